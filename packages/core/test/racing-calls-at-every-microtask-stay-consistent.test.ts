/*
 * A fault is asynchronous, so another call of the same process (another "thread") can run at any
 * await inside it. Here a second call -- munmap, mprotect, fork, exit -- is made after 0, 1, 2, ...
 * microtasks of a fault, so that it lands on every await the fault makes in turn. Whatever the
 * interleaving, the fault either completes or fails cleanly, the bytes are right, and the kernel's
 * books balance.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Kernel, KernelError, PAGE_SIZE, type Proc, Prot } from '../src/index.js';
import { makeTmpDir, removeTmpDir, settle, writeFileOf } from './helpers.js';

const STEPS = Array.from({ length: 24 }, (_, i) => i);

async function microtasks(n: number): Promise<void> {
  for (let i = 0; i < n; i++) await Promise.resolve();
}

function outcome(p: Promise<unknown>): Promise<string> {
  return p.then(
    () => 'ok',
    (err: unknown) => {
      if (err instanceof KernelError) return err.code;
      throw err;
    },
  );
}

async function finish(k: Kernel, procs: Proc[], physPages: number): Promise<void> {
  k.checkInvariants();
  for (const p of procs) if (!p.exited) p.exit();
  await settle(k);
  expect(k.stats()).toMatchObject({ freePages: physPages, anons: 0, swapUsed: 0 });
}

/* a parent and a child sharing one written page copy-on-write, the child's mapping already valid */
async function cowPair(): Promise<{ k: Kernel; p: Proc; c: Proc; va: number }> {
  const k = new Kernel({ physPages: 16, swapPages: 16 });
  const p = k.createProcess();
  const va = p.mmap(2 * PAGE_SIZE);
  await p.write(va, Buffer.from('parent'));
  const c = p.fork();
  await c.read(va, 1);
  return { k, p, c, va };
}

describe('a copy-on-write fault races with', () => {
  it.each(STEPS)('munmap after %i microtasks', async (n) => {
    const { k, p, c, va } = await cowPair();
    const writing = outcome(c.write(va, Buffer.from('child')));
    await microtasks(n);
    c.munmap(va, 2 * PAGE_SIZE);
    expect(['ok', 'EFAULT']).toContain(await writing);
    k.checkInvariants();
    expect((await p.read(va, 6)).toString()).toBe('parent');
    await finish(k, [p, c], 16);
  });

  it.each(STEPS)('mprotect to read-only after %i microtasks', async (n) => {
    const { k, p, c, va } = await cowPair();
    const writing = outcome(c.write(va, Buffer.from('child')));
    await microtasks(n);
    c.mprotect(va, PAGE_SIZE, Prot.READ);
    const res = await writing;
    expect(['ok', 'EFAULT']).toContain(res);
    k.checkInvariants();
    expect((await c.read(va, 6)).toString()).toBe(res === 'ok' ? 'childt' : 'parent');
    expect((await p.read(va, 6)).toString()).toBe('parent');
    await finish(k, [p, c], 16);
  });

  it.each(STEPS)('fork after %i microtasks', async (n) => {
    const { k, p, c, va } = await cowPair();
    const writing = outcome(c.write(va, Buffer.from('child')));
    await microtasks(n);
    const g = c.fork();
    expect(await writing).toBe('ok');
    k.checkInvariants();
    expect((await c.read(va, 6)).toString()).toBe('childt');
    expect(['parent', 'childt']).toContain((await g.read(va, 6)).toString());
    expect((await p.read(va, 6)).toString()).toBe('parent');
    /* and from here on, the three are independent */
    await g.write(va, Buffer.from('G'));
    expect((await c.read(va, 1)).toString()).toBe('c');
    await finish(k, [p, c, g], 16);
  });

  it.each(STEPS)('exit after %i microtasks', async (n) => {
    const { k, p, c, va } = await cowPair();
    const writing = outcome(c.write(va, Buffer.from('child')));
    await microtasks(n);
    c.exit();
    expect(['ok', 'ESRCH']).toContain(await writing);
    k.checkInvariants();
    expect((await p.read(va, 6)).toString()).toBe('parent');
    await finish(k, [p], 16);
  });
});

describe('a zero-fill fault races with', () => {
  it.each(STEPS)('munmap after %i microtasks', async (n) => {
    const k = new Kernel({ physPages: 16, swapPages: 0 });
    const p = k.createProcess();
    const va = p.mmap(PAGE_SIZE);
    const writing = outcome(p.write(va, Buffer.from('zero')));
    await microtasks(n);
    p.munmap(va, PAGE_SIZE);
    expect(['ok', 'EFAULT']).toContain(await writing);
    await finish(k, [p], 16);
  });
});

describe('a swap-in races with', () => {
  /* 24 pages written into 16: the first ones are on swap */
  async function swapped(): Promise<{ k: Kernel; p: Proc; c: Proc; va: number }> {
    const k = new Kernel({ physPages: 16, swapPages: 64 });
    const p = k.createProcess();
    const va = p.mmap(24 * PAGE_SIZE);
    for (let i = 0; i < 24; i++) await p.write(va + i * PAGE_SIZE, Buffer.from(`page ${i}`));
    await k.idle();
    expect(p.map.pmap.extract(va / PAGE_SIZE)).toBe(-1);
    const c = p.fork();
    return { k, p, c, va };
  }

  it.each(STEPS)('munmap after %i microtasks', async (n) => {
    const { k, p, c, va } = await swapped();
    const writing = outcome(c.write(va, Buffer.from('CHILD')));
    await microtasks(n);
    c.munmap(va, 24 * PAGE_SIZE);
    expect(['ok', 'EFAULT']).toContain(await writing);
    k.checkInvariants();
    expect((await p.read(va, 6)).toString()).toBe('page 0');
    await finish(k, [p, c], 16);
  });

  it.each(STEPS)('the other side writing the same page after %i microtasks', async (n) => {
    const { k, p, c, va } = await swapped();
    const child = outcome(c.write(va, Buffer.from('CHILD')));
    await microtasks(n);
    const parent = outcome(p.write(va, Buffer.from('PARENT')));
    expect(await child).toBe('ok');
    expect(await parent).toBe('ok');
    k.checkInvariants();
    expect((await c.read(va, 6)).toString()).toBe('CHILD0');
    expect((await p.read(va, 6)).toString()).toBe('PARENT');
    await finish(k, [p, c], 16);
  });
});

describe('a private file page promotion races with', () => {
  let dir: string;
  let file: string;
  beforeAll(async () => {
    dir = await makeTmpDir();
    file = await writeFileOf(dir, 'f', PAGE_SIZE, 1);
  });
  afterAll(async () => {
    await removeTmpDir(dir);
  });

  it.each(STEPS)('munmap after %i microtasks', async (n) => {
    const k = new Kernel({ physPages: 16, swapPages: 0 });
    const p = k.createProcess();
    const va = await p.mmapFile(file, { prot: Prot.READ | Prot.WRITE });
    await p.read(va, 1);
    const writing = outcome(p.write(va, Buffer.from('mine')));
    await microtasks(n);
    p.munmap(va, PAGE_SIZE);
    expect(['ok', 'EFAULT']).toContain(await writing);
    await finish(k, [p], 16);
  });
});
