/*
 * A page transferred into a process (uvmPageTransfer) is from then on the process's own anonymous
 * memory, like a page a write fault made: loaned by A->K it is read-only until unloaned, a write
 * breaks the loan and the borrower keeps the old bytes; fork shares it copy-on-write; munmap and exit
 * free it; the pagedaemon pages it out and back in.
 */
import { describe, expect, it } from 'vitest';
import {
  Kernel,
  PAGE_SIZE,
  Prot,
  uvmLoan,
  uvmPageTransfer,
  uvmPglistAlloc,
  uvmUnloanPages,
  type VmPage,
} from '../src/index.js';
import { frameAt, pattern, settle } from './helpers.js';

const P = PAGE_SIZE;

/* received: n kernel pages holding pattern(n * P, seed), as the network would have filled them */
function received(k: Kernel, n: number, seed: number): VmPage[] {
  const run = uvmPglistAlloc(k.uvm, n, { zero: false })!;
  const bytes = pattern(n * P, seed);
  for (let i = 0; i < n; i++) bytes.copy(run[i].bytes(), 0, i * P, (i + 1) * P);
  return run;
}

describe('transferred pages are ordinary anonymous memory', () => {
  it('loaned A->K: read-only until unloaned; a write breaks the loan and the borrower keeps the old bytes', async () => {
    const k = new Kernel({ physPages: 64, swapPages: 0 });
    const p = k.createProcess();
    const va = p.mmap(2 * P);
    const run = received(k, 2, 1);
    uvmPageTransfer(p.map, va, run);
    const loans = await uvmLoan(p.map, va, 2 * P, 'kernel');
    expect(loans).toEqual(run);
    expect(p.map.pmap.protAt(va / P) & Prot.WRITE).toBe(0);
    expect(run[0].loanCount).toBe(1);
    await p.write(va + 10, Buffer.from('after the send'));
    expect(frameAt(p, va)).not.toBe(run[0].frame);
    expect(k.stats().loanBreaks).toBe(1);
    expect(Buffer.from(loans[0].bytes())).toEqual(pattern(2 * P, 1).subarray(0, P));
    const mine = await p.read(va, 2 * P);
    expect(mine.subarray(10, 24).toString()).toBe('after the send');
    expect(mine.subarray(P)).toEqual(pattern(2 * P, 1).subarray(P));
    k.checkInvariants();
    uvmUnloanPages(loans);
    /* the second page's loan ended without a write: writable again, the same frame */
    await p.write(va + P, Buffer.from('y'));
    expect(frameAt(p, va + P)).toBe(run[1].frame);
    expect(k.stats().orphanPages).toBe(0);
    k.checkInvariants();
    p.exit();
    expect(k.stats().freePages).toBe(64);
  });

  it('fork after a transfer: both share the page copy-on-write; each write copies', async () => {
    const k = new Kernel({ physPages: 64, swapPages: 0 });
    const p = k.createProcess();
    const va = p.mmap(P);
    const [pg] = received(k, 1, 2);
    uvmPageTransfer(p.map, va, [pg]);
    const c = p.fork();
    expect(await c.read(va, P)).toEqual(pattern(P, 2));
    expect(frameAt(c, va)).toBe(pg.frame);
    await c.write(va, Buffer.from('child'));
    expect(frameAt(c, va)).not.toBe(pg.frame);
    expect(await p.read(va, P)).toEqual(pattern(P, 2));
    await p.write(va, Buffer.from('parent'));
    expect((await c.read(va, 5)).toString()).toBe('child');
    expect((await p.read(va, 6)).toString()).toBe('parent');
    k.checkInvariants();
    c.exit();
    p.exit();
    expect(k.stats().freePages).toBe(64);
  });

  it('munmap and exit free transferred pages', async () => {
    const k = new Kernel({ physPages: 64, swapPages: 0 });
    const p = k.createProcess();
    const va = p.mmap(4 * P);
    uvmPageTransfer(p.map, va, received(k, 4, 3));
    expect(k.stats().freePages).toBe(60);
    p.munmap(va, 2 * P);
    expect(k.stats().freePages).toBe(62);
    k.checkInvariants();
    p.exit();
    expect(k.stats()).toMatchObject({ freePages: 64, anons: 0, wiredPages: 0 });
    k.checkInvariants();
  });

  it('the pagedaemon pages transferred pages out and back in, bytes intact', async () => {
    const k = new Kernel({ physPages: 32, swapPages: 64 });
    const p = k.createProcess();
    const va = p.mmap(8 * P);
    uvmPageTransfer(p.map, va, received(k, 8, 4));
    const other = p.mmap(40 * P);
    for (let i = 0; i < 40; i++) await p.write(other + i * P, Buffer.alloc(1, i));
    await settle(k);
    expect(k.stats().pageouts).toBeGreaterThan(0);
    expect(await p.read(va, 8 * P)).toEqual(pattern(8 * P, 4));
    expect(k.stats().pageins).toBeGreaterThan(0);
    await settle(k);
    p.exit();
    expect(k.stats()).toMatchObject({ freePages: 32, swapUsed: 0 });
  });
});
