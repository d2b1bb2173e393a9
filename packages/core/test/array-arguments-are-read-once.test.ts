/*
 * Array arguments are read once: what the checks saw is what the work uses.
 *
 * uvmUnloanPages, uvmUnloanAnons, uvmPglistFree, uvmPageTransfer and kenter promise that the whole
 * call is checked before anything changes (a page listed twice, not loaned, not kernel memory). An
 * attacker found they checked `list[i]` in one loop and acted on `list[i]` in another, so an array
 * whose elements are getters (Object.defineProperty on an array -- Array.isArray is still true; a
 * Proxy does the same) passed the checks with one set of elements and was acted on with another: a
 * page transferred and then a panic half-way, a loanCount of -1 and another loan never ended, an anon
 * freed while an amap slot still held it. Each now takes a snapshot of its array on entry
 * (snapshotList in uvm_pglist.ts) and checks and acts on the snapshot only. The flip here is
 * triggered by the kernel's own trace listener, so it is deterministic.
 */
import { describe, expect, it } from 'vitest';
import {
  type Anon,
  Kernel,
  KernelError,
  KernelPanic,
  PAGE_SIZE,
  uvmLoan,
  uvmPageTransfer,
  uvmPglistAlloc,
  uvmPglistFree,
  uvmUnloanAnons,
  uvmUnloanPages,
  type VmPage,
} from '../src/index.js';
import { makeTmpDir, removeTmpDir, writeFileOf } from './helpers.js';

/* an array that reads as `good` until flip() is called, then as `bad` (element getters) */
function flipping<T>(good: readonly T[], bad: readonly T[]): { arr: T[]; flip: () => void } {
  let flipped = false;
  const arr: T[] = [];
  for (let i = 0; i < good.length; i++) {
    Object.defineProperty(arr, i, { get: () => (flipped ? bad[i] : good[i]), enumerable: true });
  }
  return { arr, flip: () => (flipped = true) };
}

/* the call either refuses cleanly (KernelError/KernelPanic) with nothing changed, or succeeds */
function attempt(fn: () => void): string {
  try {
    fn();
    return 'returned';
  } catch (err) {
    if (err instanceof KernelError || err instanceof KernelPanic) return err.constructor.name;
    throw err;
  }
}

describe('array arguments whose elements change between the check and the work', () => {
  it('uvmPageTransfer: elements that change after the checks -- both pages move, or none', () => {
    const k = new Kernel({ physPages: 256, swapPages: 0 });
    const p = k.createProcess();
    const va = p.mmap(2 * PAGE_SIZE);
    const run = uvmPglistAlloc(k.uvm, 2)!;
    const { arr, flip } = flipping<VmPage>(run, [run[0], run[0]]);
    const off = k.onTrace((ev) => ev.kind === 'transfer' && flip());
    const outcome = attempt(() => uvmPageTransfer(p.map, va, arr));
    off();
    /* a refusal must leave everything as it was: no page transferred, both still kernel memory */
    expect({ outcome, transferred: k.stats().pagesTransferred }).toEqual(
      outcome === 'returned' ? { outcome, transferred: 2 } : { outcome, transferred: 0 },
    );
  });

  it('uvmUnloanPages: elements that change after the checks -- both loans end, or none', async () => {
    const k = new Kernel({ physPages: 256, swapPages: 0 });
    const p = k.createProcess();
    const va = p.mmap(2 * PAGE_SIZE);
    await p.write(va, Buffer.alloc(2 * PAGE_SIZE, 7));
    const pages = await uvmLoan(p.map, va, 2 * PAGE_SIZE, 'kernel');
    const { arr, flip } = flipping<VmPage>(pages, [pages[0], pages[0]]);
    const off = k.onTrace((ev) => ev.kind === 'unloan' && flip());
    attempt(() => uvmUnloanPages(arr));
    off();
    /* either both loans ended, or none did -- never a count below zero */
    const counts = pages.map((pg) => pg.loanCount);
    expect([
      [0, 0],
      [1, 1],
    ]).toContainEqual(counts);
    expect(() => k.checkInvariants()).not.toThrow();
  });

  it('uvmUnloanAnons: elements that change after the checks -- the amap keeps its anons and bytes', async () => {
    const k = new Kernel({ physPages: 256, swapPages: 0 });
    const p = k.createProcess();
    const va = p.mmap(2 * PAGE_SIZE);
    await p.write(va, Buffer.alloc(2 * PAGE_SIZE, 7));
    const anons = await uvmLoan(p.map, va, 2 * PAGE_SIZE, 'anon');
    /* element 1 is anons[1] for the checks (read twice there), anons[0] after */
    let reads = 0;
    const arr: Anon[] = [];
    Object.defineProperty(arr, 0, { get: () => anons[0], enumerable: true });
    Object.defineProperty(arr, 1, { get: () => (++reads > 2 ? anons[0] : anons[1]), enumerable: true });
    attempt(() => uvmUnloanAnons(arr));
    /* every anon still in the process's amap must keep a reference */
    expect(() => k.checkInvariants()).not.toThrow();
    expect((await p.read(va, 2 * PAGE_SIZE)).equals(Buffer.alloc(2 * PAGE_SIZE, 7))).toBe(true);
  });

  it('mmapFile reads each option once', async () => {
    const dir = await makeTmpDir();
    try {
      const path = await writeFileOf(dir, 'f', 4 * PAGE_SIZE, 1);
      const k = new Kernel({ physPages: 64, swapPages: 0 });
      const p = k.createProcess();
      let reads = 0;
      /* a length that passes the check, then asks for 2^40 bytes */
      const opts = {
        get length() {
          return ++reads > 1 ? 2 ** 40 : PAGE_SIZE;
        },
      };
      const va = await p.mmapFile(path, opts);
      expect(reads).toBe(1);
      expect(p.map.lookup(va)?.end).toBe(va + PAGE_SIZE);
      p.exit();
      k.checkInvariants();
    } finally {
      await removeTmpDir(dir);
    }
  });

  it('uvmPglistFree and kenter read each element once', () => {
    const k = new Kernel({ physPages: 64, swapPages: 0 });
    const run = uvmPglistAlloc(k.uvm, 2)!;
    const reads = [0, 0];
    /* an element that answers differently on its second read (run[0] twice would panic half-way) */
    const once = (): VmPage[] => {
      const arr: VmPage[] = [];
      Object.defineProperty(arr, 0, { get: () => run[reads[0]++ && 0], enumerable: true });
      Object.defineProperty(arr, 1, { get: () => (++reads[1] > 1 ? run[0] : run[1]), enumerable: true });
      return arr;
    };
    const va = k.kva.alloc(2);
    k.kenter(va, once());
    expect(k.uvm.mmu.kernelPmap.extract(va / PAGE_SIZE + 1)).toBe(run[1].frame);
    k.kremove(va, 2);
    k.kva.free(va, 2);
    const freeBefore = k.stats().freePages;
    reads[0] = reads[1] = 0;
    uvmPglistFree(once());
    expect({ reads, freed: k.stats().freePages - freeBefore }).toEqual({ reads: [1, 1], freed: 2 });
    k.checkInvariants();
  });
});
