/*
 * A transfer replaces what a range held, but never under a borrower: old pages on loan to the kernel
 * become orphans with their bytes (freed by the last unloan); a range pinned by loans to anons (as the
 * socket layer pins a send) keeps the pinned bytes; a page being paged out when it is replaced is let
 * go by the pageout when its I/O ends. The process sees the new pages at once in every case.
 */
import { describe, expect, it } from 'vitest';
import {
  type Anon,
  Kernel,
  PAGE_SIZE,
  uvmLoan,
  uvmLoanAnonPages,
  uvmLoanNow,
  uvmPageTransfer,
  uvmPglistAlloc,
  uvmUnloanAnons,
  uvmUnloanPages,
  type VmPage,
} from '../src/index.js';
import { deferred, pattern, settle } from './helpers.js';

const P = PAGE_SIZE;

function received(k: Kernel, n: number, seed: number): VmPage[] {
  const run = uvmPglistAlloc(k.uvm, n, { zero: false })!;
  const bytes = pattern(n * P, seed);
  for (let i = 0; i < n; i++) bytes.copy(run[i].bytes(), 0, i * P, (i + 1) * P);
  return run;
}

/* pinnedBytes: the bytes a pin holds (its anons' pages, loaned to the kernel for the look) */
async function pinnedBytes(anons: Anon[]): Promise<Buffer> {
  const pages = await uvmLoanAnonPages(anons);
  const out = Buffer.concat(pages.map((pg) => Buffer.from(pg.bytes())));
  uvmUnloanPages(pages);
  return out;
}

describe('a transfer over pages someone borrowed', () => {
  it('old pages on loan to the kernel become orphans and keep their bytes; the last unloan frees them', async () => {
    const k = new Kernel({ physPages: 64, swapPages: 0 });
    const p = k.createProcess();
    const va = p.mmap(3 * P);
    await p.write(va, pattern(3 * P, 1));
    const loans = await uvmLoan(p.map, va, 3 * P, 'kernel');
    uvmPageTransfer(p.map, va + P, received(k, 2, 2));
    expect(k.stats().orphanPages).toBe(2);
    expect(Buffer.concat(loans.map((pg) => Buffer.from(pg.bytes())))).toEqual(pattern(3 * P, 1));
    expect(await p.read(va, 3 * P)).toEqual(
      Buffer.concat([pattern(3 * P, 1).subarray(0, P), pattern(2 * P, 2)]),
    );
    k.checkInvariants();
    const freed = k.stats().orphansFreed;
    uvmUnloanPages(loans);
    expect(k.stats().orphansFreed - freed).toBe(2);
    expect(k.stats().orphanPages).toBe(0);
    k.checkInvariants();
    p.exit();
    expect(k.stats().freePages).toBe(64);
  });

  it('a range pinned by loans to anons keeps the pinned bytes, written or never touched', async () => {
    const k = new Kernel({ physPages: 64, swapPages: 0 });
    const p = k.createProcess();
    const va = p.mmap(4 * P);
    await p.write(va, pattern(2 * P, 5));
    /* pages 0-1 written, 2-3 never touched (zero-fill: the pin holds the zero page) */
    const pin = uvmLoanNow(p.map, va, 4 * P, 'anon')!;
    uvmPageTransfer(p.map, va, received(k, 4, 6));
    expect(await p.read(va, 4 * P)).toEqual(pattern(4 * P, 6));
    expect(await pinnedBytes(pin)).toEqual(Buffer.concat([pattern(2 * P, 5), Buffer.alloc(2 * P)]));
    k.checkInvariants();
    uvmUnloanAnons(pin);
    k.checkInvariants();
    p.exit();
    expect(k.stats()).toMatchObject({ freePages: 64, anons: 0 });
  });

  it('a page being paged out when it is replaced: the pageout lets it go when its write ends', async () => {
    const k = new Kernel({ physPages: 24, swapPages: 64 });
    const p = k.createProcess();
    const fresh = received(k, 1, 7);
    const va = p.mmap(32 * P);
    const held = deferred();
    let victim: number | null = null;
    k.setIoHook(async (ev) => {
      if (ev.kind !== 'swapout' || victim !== null) return;
      const anon = k.uvm.pages[ev.frame].uanon;
      const slot = p.map.entries[0].amap!.slots.indexOf(anon);
      if (slot < 0) return;
      victim = va + slot * P;
      await held.promise;
    });
    const writing = (async () => {
      for (let i = 0; i < 32; i++) await p.write(va + i * P, Buffer.alloc(P, i + 1));
    })();
    while (victim === null) await new Promise((r) => setImmediate(r));
    uvmPageTransfer(p.map, victim, fresh);
    held.resolve();
    await writing;
    await settle(k);
    k.setIoHook(null);
    expect(await p.read(victim, P)).toEqual(pattern(P, 7));
    const slot = (victim - va) / P;
    for (let i = 0; i < 32; i++) {
      if (i !== slot) expect((await p.read(va + i * P, 1))[0]).toBe(i + 1);
    }
    await settle(k);
    p.exit();
    expect(k.stats()).toMatchObject({ freePages: 24, swapUsed: 0, anons: 0 });
    k.checkInvariants();
  });
});
