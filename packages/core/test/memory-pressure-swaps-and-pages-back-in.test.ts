/*
 * Under memory pressure the pagedaemon pages anonymous memory out to swap and drops or writes back
 * file pages; every byte comes back right, whatever the mix of processes, forks and files.
 */
import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { Kernel, PAGE_SIZE, type Proc, Prot } from '../src/index.js';
import { frameAt, pattern, settle, useTmpDir, writeFileOf } from './helpers.js';

const RW = Prot.READ | Prot.WRITE;

async function fill(p: Proc, va: number, pages: number, seed: number): Promise<void> {
  for (let i = 0; i < pages; i++) await p.write(va + i * PAGE_SIZE, pattern(PAGE_SIZE, seed + i));
}

async function check(p: Proc, va: number, pages: number, seed: number, order: 'up' | 'down' = 'up') {
  for (let j = 0; j < pages; j++) {
    const i = order === 'up' ? j : pages - 1 - j;
    const got = await p.read(va + i * PAGE_SIZE, PAGE_SIZE);
    if (!got.equals(pattern(PAGE_SIZE, seed + i))) throw new Error(`page ${i} of seed ${seed} is wrong`);
  }
}

describe('memory pressure', () => {
  it('three processes with three times RAM between them get every page back', async () => {
    const k = new Kernel({ physPages: 32, swapPages: 128 });
    const procs = [k.createProcess(), k.createProcess(), k.createProcess()];
    const n = 32;
    const vas = procs.map((p) => p.mmap(n * PAGE_SIZE));
    /* interleaved writes: page i of each process in turn */
    for (let i = 0; i < n; i++) {
      for (const [j, p] of procs.entries())
        await p.write(vas[j] + i * PAGE_SIZE, pattern(PAGE_SIZE, j * 1000 + i));
    }
    k.checkInvariants();
    expect(k.stats().pageouts).toBeGreaterThanOrEqual(3 * n - 32);
    for (const [j, p] of procs.entries()) await check(p, vas[j], n, j * 1000, j === 1 ? 'down' : 'up');
    expect(k.stats().pageins).toBeGreaterThan(0);
    k.checkInvariants();
    for (const p of procs) p.exit();
    await settle(k);
    expect(k.stats()).toMatchObject({ freePages: 32, swapUsed: 0, anons: 0 });
  });

  it('a page on swap shared by a fork is read back once and copied only for the writer', async () => {
    const k = new Kernel({ physPages: 24, swapPages: 128 });
    const p = k.createProcess();
    const n = 40;
    const va = p.mmap(n * PAGE_SIZE);
    await fill(p, va, n, 0);
    /* page 0 is long gone to swap */
    expect(frameAt(p, va)).toBe(-1);
    const c = p.fork();
    await c.write(va + 5, Buffer.from('child'));
    const want0 = pattern(PAGE_SIZE, 0);
    expect((await p.read(va, PAGE_SIZE)).equals(want0)).toBe(true);
    const got = await c.read(va, PAGE_SIZE);
    expect(got.subarray(5, 10).toString()).toBe('child');
    expect(got.subarray(10).equals(want0.subarray(10))).toBe(true);
    k.checkInvariants();
    await check(c, va + PAGE_SIZE, n - 1, 1);
    await check(p, va + PAGE_SIZE, n - 1, 1, 'down');
    k.checkInvariants();
    c.exit();
    await check(p, va + PAGE_SIZE, n - 1, 1);
    p.exit();
    await settle(k);
    expect(k.stats()).toMatchObject({ freePages: 24, swapUsed: 0, anons: 0 });
  });

  it('exit frees swap slots as well as pages', async () => {
    const k = new Kernel({ physPages: 16, swapPages: 64 });
    const p = k.createProcess();
    const q = k.createProcess();
    const a = p.mmap(30 * PAGE_SIZE);
    const b = q.mmap(10 * PAGE_SIZE);
    await fill(p, a, 30, 0);
    await fill(q, b, 10, 500);
    expect(k.stats().swapUsed).toBeGreaterThan(0);
    p.exit();
    await k.idle();
    expect(k.stats().anons).toBe(10);
    await check(q, b, 10, 500);
    expect(k.stats().swapUsed).toBe(0);
    q.exit();
    await settle(k);
    expect(k.stats()).toMatchObject({ freePages: 16, swapUsed: 0 });
  });

  describe('with files', () => {
    const tmp = useTmpDir();

    it('files, private and shared anonymous memory all at once, concurrently, come back right', async () => {
      const fpages = 20;
      const roFile = await writeFileOf(tmp.dir, 'ro', fpages * PAGE_SIZE, 7);
      const rwFile = await writeFileOf(tmp.dir, 'rw', fpages * PAGE_SIZE, 8);
      const k = new Kernel({ physPages: 32, swapPages: 128 });
      const p = k.createProcess();
      const q = k.createProcess();
      const fro = await p.mmapFile(roFile);
      const frw = await q.mmapFile(rwFile, { prot: RW, shared: true });
      const priv = p.mmap(20 * PAGE_SIZE);
      const shm = q.mmap(20 * PAGE_SIZE, { shared: true });
      await Promise.all([
        fill(p, priv, 20, 100),
        fill(q, shm, 20, 200),
        fill(q, frw, fpages, 300),
        (async () => {
          const want = pattern(fpages * PAGE_SIZE, 7);
          for (let i = 0; i < fpages; i++) {
            const got = await p.read(fro + i * PAGE_SIZE, PAGE_SIZE);
            if (!got.equals(want.subarray(i * PAGE_SIZE, (i + 1) * PAGE_SIZE)))
              throw new Error(`ro page ${i}`);
          }
        })(),
      ]);
      k.checkInvariants();
      expect(k.stats().pageouts).toBeGreaterThan(0);
      const c = q.fork();
      await Promise.all([
        check(p, priv, 20, 100, 'down'),
        check(c, shm, 20, 200),
        check(q, frw, fpages, 300, 'down'),
      ]);
      k.checkInvariants();
      await k.sync();
      const onDisk = await readFile(rwFile);
      for (let i = 0; i < fpages; i++) {
        expect(onDisk.subarray(i * PAGE_SIZE, (i + 1) * PAGE_SIZE).equals(pattern(PAGE_SIZE, 300 + i))).toBe(
          true,
        );
      }
      expect((await readFile(roFile)).equals(pattern(fpages * PAGE_SIZE, 7))).toBe(true);
      for (const x of [p, q, c]) x.exit();
      await settle(k);
      expect(k.stats()).toMatchObject({ freePages: 32, swapUsed: 0, anons: 0 });
    });
  });
});
