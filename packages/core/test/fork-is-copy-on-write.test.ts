/*
 * fork copies nothing: parent and child share every page until one of them writes it, and then only
 * that page is copied, for the writer. Three generations, every order of writes and exits.
 */
import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { Inherit, Kernel, PAGE_SIZE, Prot } from '../src/index.js';
import { expectError, frameAt, mappedFile, pattern, settle, useTmpDir } from './helpers.js';

const RW = Prot.READ | Prot.WRITE;

describe('fork is copy-on-write', () => {
  it('shares every page until written, then copies exactly the written page for the writer', async () => {
    const k = new Kernel({ physPages: 64, swapPages: 0 });
    const p = k.createProcess();
    const n = 8;
    const va = p.mmap(n * PAGE_SIZE);
    const data = pattern(n * PAGE_SIZE, 1);
    await p.write(va, data);
    const used = () => 64 - k.stats().freePages;
    expect(used()).toBe(n);

    const c = p.fork();
    const g = c.fork();
    expect(used()).toBe(n);
    for (const q of [p, c, g]) expect((await q.read(va, n * PAGE_SIZE)).equals(data)).toBe(true);
    expect(used()).toBe(n);
    for (let i = 0; i < n; i++) {
      expect(frameAt(c, va + i * PAGE_SIZE)).toBe(frameAt(p, va + i * PAGE_SIZE));
      expect(frameAt(g, va + i * PAGE_SIZE)).toBe(frameAt(p, va + i * PAGE_SIZE));
    }
    k.checkInvariants();

    /* each generation writes a different page: one new page each */
    await p.write(va + 0 * PAGE_SIZE + 1, Buffer.from('parent'));
    expect(used()).toBe(n + 1);
    await c.write(va + 1 * PAGE_SIZE + 1, Buffer.from('child'));
    expect(used()).toBe(n + 2);
    await g.write(va + 2 * PAGE_SIZE + 1, Buffer.from('grandchild'));
    expect(used()).toBe(n + 3);
    /* and writing the same page again costs nothing more */
    await g.write(va + 2 * PAGE_SIZE + 100, Buffer.from('again'));
    expect(used()).toBe(n + 3);
    k.checkInvariants();

    const expectFor = (writes: [number, string][]) => {
      const want = Buffer.from(data);
      for (const [at, s] of writes) Buffer.from(s).copy(want, at);
      return want;
    };
    const inP = expectFor([[1, 'parent']]);
    const inC = expectFor([[PAGE_SIZE + 1, 'child']]);
    const inG = expectFor([
      [2 * PAGE_SIZE + 1, 'grandchild'],
      [2 * PAGE_SIZE + 100, 'again'],
    ]);
    expect((await p.read(va, n * PAGE_SIZE)).equals(inP)).toBe(true);
    expect((await c.read(va, n * PAGE_SIZE)).equals(inC)).toBe(true);
    expect((await g.read(va, n * PAGE_SIZE)).equals(inG)).toBe(true);

    /* the middle generation leaves: the others keep their bytes */
    c.exit();
    k.checkInvariants();
    expect((await p.read(va, n * PAGE_SIZE)).equals(inP)).toBe(true);
    expect((await g.read(va, n * PAGE_SIZE)).equals(inG)).toBe(true);
    expect(used()).toBe(n + 2);
    p.exit();
    expect((await g.read(va, n * PAGE_SIZE)).equals(inG)).toBe(true);
    expect(used()).toBe(n);
    g.exit();
    expect(k.stats()).toMatchObject({ freePages: 64, anons: 0 });
    k.checkInvariants();
  });

  it('a page shared by many is copied for each writer but the last, who keeps the original', async () => {
    const k = new Kernel({ physPages: 32, swapPages: 0 });
    const root = k.createProcess();
    const va = root.mmap(PAGE_SIZE);
    await root.write(va, Buffer.from('origin'));
    const kids = [root.fork(), root.fork(), root.fork()];
    const origFrame = frameAt(root, va);
    const cows = k.stats().cowFaults;
    for (const [i, kid] of kids.entries()) await kid.write(va, Buffer.from(`kid${i}`));
    expect(k.stats().cowFaults).toBe(cows + 3);
    await root.write(va, Buffer.from('ROOT'));
    /* root was the last to share the page: it writes in place */
    expect(frameAt(root, va)).toBe(origFrame);
    expect(k.stats().cowFaults).toBe(cows + 3);
    expect((await root.read(va, 6)).toString()).toBe('ROOTin');
    for (const [i, kid] of kids.entries()) expect((await kid.read(va, 6)).toString()).toBe(`kid${i}in`);
    k.checkInvariants();
    for (const q of [root, ...kids]) q.exit();
    expect(k.stats().freePages).toBe(32);
  });

  it('inheritance decides: COPY is copy-on-write, SHARE is shared, NONE is not mapped', async () => {
    const k = new Kernel({ physPages: 32, swapPages: 0 });
    const p = k.createProcess();
    const copy = p.mmap(PAGE_SIZE, { inherit: Inherit.COPY });
    const share = p.mmap(PAGE_SIZE, { inherit: Inherit.SHARE });
    const none = p.mmap(PAGE_SIZE, { inherit: Inherit.NONE });
    const shm = p.mmap(PAGE_SIZE, { shared: true });
    for (const va of [copy, share, none, shm]) await p.write(va, Buffer.from('p'));
    const c = p.fork();
    const g = c.fork();
    await g.write(copy, Buffer.from('g'));
    await g.write(share, Buffer.from('g'));
    await g.write(shm, Buffer.from('g'));
    expect((await p.read(copy, 1)).toString()).toBe('p');
    expect((await c.read(copy, 1)).toString()).toBe('p');
    expect((await p.read(share, 1)).toString()).toBe('g');
    expect((await c.read(share, 1)).toString()).toBe('g');
    expect((await p.read(shm, 1)).toString()).toBe('g');
    await expectError(c.read(none, 1), 'EFAULT');
    await expectError(g.read(none, 1), 'EFAULT');
    expect((await p.read(none, 1)).toString()).toBe('p');
    /* the address of a NONE region is free in the child: a new mmap may take it */
    expect(c.mmap(PAGE_SIZE)).toBe(none);
    k.checkInvariants();
    for (const q of [g, p, c]) q.exit();
    expect(k.stats()).toMatchObject({ freePages: 32, anons: 0 });
  });

  it('the child inherits protections, and may change its own without touching the parent', async () => {
    const k = new Kernel({ physPages: 32, swapPages: 0 });
    const p = k.createProcess();
    const va = p.mmap(2 * PAGE_SIZE);
    await p.write(va, Buffer.from('ro'));
    p.mprotect(va, 2 * PAGE_SIZE, Prot.READ);
    const c = p.fork();
    await expectError(c.write(va, Buffer.from('x')), 'EFAULT');
    c.mprotect(va, PAGE_SIZE, RW);
    await c.write(va, Buffer.from('RW'));
    await expectError(p.write(va, Buffer.from('x')), 'EFAULT');
    expect((await p.read(va, 2)).toString()).toBe('ro');
    expect((await c.read(va, 2)).toString()).toBe('RW');
    k.checkInvariants();
    p.exit();
    c.exit();
    expect(k.stats().freePages).toBe(32);
  });

  it('fork right after mmap, before any touch, then both zero-fill their own pages', async () => {
    const k = new Kernel({ physPages: 32, swapPages: 0 });
    const p = k.createProcess();
    const va = p.mmap(4 * PAGE_SIZE);
    const c = p.fork();
    await c.write(va + PAGE_SIZE, Buffer.from('c'));
    await p.write(va + PAGE_SIZE, Buffer.from('p'));
    expect((await c.read(va + PAGE_SIZE, 1)).toString()).toBe('c');
    expect((await p.read(va + PAGE_SIZE, 1)).toString()).toBe('p');
    expect((await c.read(va, 1))[0]).toBe(0);
    expect(k.stats().zeroFills).toBe(3);
    k.checkInvariants();
    p.exit();
    c.exit();
    expect(k.stats().freePages).toBe(32);
  });

  it('partial munmap in the child after fork leaves the parent whole', async () => {
    const k = new Kernel({ physPages: 32, swapPages: 0 });
    const p = k.createProcess();
    const va = p.mmap(4 * PAGE_SIZE);
    await p.write(va, pattern(4 * PAGE_SIZE, 2));
    const c = p.fork();
    c.munmap(va + PAGE_SIZE, 2 * PAGE_SIZE);
    expect(k.stats().freePages).toBe(28);
    await c.write(va + 3 * PAGE_SIZE, Buffer.from('c'));
    expect((await p.read(va, 4 * PAGE_SIZE)).equals(pattern(4 * PAGE_SIZE, 2))).toBe(true);
    p.exit();
    /* only the pages the child still maps survive */
    expect(k.stats().freePages).toBe(30);
    expect((await c.read(va, PAGE_SIZE)).equals(pattern(4 * PAGE_SIZE, 2).subarray(0, PAGE_SIZE))).toBe(true);
    k.checkInvariants();
    c.exit();
    expect(k.stats().freePages).toBe(32);
  });

  describe('with files', () => {
    const tmp = useTmpDir();

    it('a private file mapping forks copy-on-write and the file never changes', async () => {
      const { file, k, p, va } = await mappedFile(
        tmp.dir,
        'f',
        2 * PAGE_SIZE,
        3,
        { prot: RW },
        { physPages: 32, swapPages: 0 },
      );
      await p.write(va, Buffer.from('before fork'));
      const c = p.fork();
      await c.write(va + PAGE_SIZE, Buffer.from('child page 2'));
      await p.write(va, Buffer.from('BEFORE'));
      expect((await c.read(va, 11)).toString()).toBe('before fork');
      expect((await p.read(va, 11)).toString()).toBe('BEFORE fork');
      expect(
        (await p.read(va + PAGE_SIZE, 12)).equals(
          pattern(2 * PAGE_SIZE, 3).subarray(PAGE_SIZE, PAGE_SIZE + 12),
        ),
      ).toBe(true);
      k.checkInvariants();
      await k.sync();
      p.exit();
      c.exit();
      await settle(k);
      expect((await readFile(file)).equals(pattern(2 * PAGE_SIZE, 3))).toBe(true);
      expect(k.stats().freePages).toBe(32);
    });

    it('a shared file mapping is shared by the child, and both write the file', async () => {
      const { file, k, p, va } = await mappedFile(
        tmp.dir,
        'g',
        PAGE_SIZE,
        4,
        { prot: RW, shared: true },
        { physPages: 32, swapPages: 0 },
      );
      const c = p.fork();
      await c.write(va, Buffer.from('child'));
      await p.write(va + 10, Buffer.from('parent'));
      expect((await c.read(va + 10, 6)).toString()).toBe('parent');
      expect((await p.read(va, 5)).toString()).toBe('child');
      await k.sync();
      const got = await readFile(file);
      expect(got.subarray(0, 5).toString()).toBe('child');
      expect(got.subarray(10, 16).toString()).toBe('parent');
      p.exit();
      c.exit();
      await settle(k);
      expect(k.stats().freePages).toBe(32);
    });
  });
});
