/*
 * Contiguous allocation under fragmentation: memory filled with 1-page allocations in a pattern that
 * leaves no run of the size asked for makes uvmPglistAlloc return null at once (counted) and
 * uvmKmAllocContig fail with ENOMEM after a few pagedaemon passes -- never an error of another kind,
 * never a hang; freeing the pages in between brings the runs back, because freed pages merge with
 * their free buddies. And under churn -- receive areas whose pages are given away and replaced again
 * and again while processes' 1-page allocations come and go -- runs stay available.
 */
import { describe, expect, it } from 'vitest';
import {
  Kernel,
  PAGE_SIZE,
  type Proc,
  uvmKmAllocContig,
  uvmKmAllocPage,
  uvmKmFreePage,
  uvmPglistAlloc,
  uvmPglistFree,
  type VmPage,
} from '../src/index.js';
import { expectError } from './helpers.js';

const P = PAGE_SIZE;

/* holdAll: every free page as kernel memory, one page at a time, in frame order */
async function holdAll(k: Kernel): Promise<VmPage[]> {
  const out: VmPage[] = [];
  while (k.stats().freePages > 0) out.push(await uvmKmAllocPage(k.uvm));
  return out.sort((a, b) => a.frame - b.frame);
}

describe('contiguous runs under fragmentation', () => {
  it('no run of 8 while every 8th page is held (null, counted; ENOMEM); freeing those brings every run back', async () => {
    const k = new Kernel({ physPages: 256, swapPages: 0 });
    const held = await holdAll(k);
    const pins = held.filter((pg) => pg.frame % 8 === 4);
    uvmPglistFree(held.filter((pg) => pg.frame % 8 !== 4));
    expect(k.stats().freePages).toBe(224);
    const before = k.stats();
    expect(uvmPglistAlloc(k.uvm, 8)).toBeNull();
    expect(uvmPglistAlloc(k.uvm, 200)).toBeNull();
    expect(k.stats().pglistFailed - before.pglistFailed).toBe(2);
    await expectError(uvmKmAllocContig(k.uvm, 8), 'ENOMEM');
    /* runs that fit between the pins are had */
    const small = uvmPglistAlloc(k.uvm, 7)!;
    expect(small.map((pg) => pg.frame - small[0].frame)).toEqual([0, 1, 2, 3, 4, 5, 6]);
    uvmPglistFree(small);
    k.checkInvariants();

    for (const pg of pins) uvmKmFreePage(pg);
    expect(k.uvm.free.blocks[8]).toBe(1);
    const all = uvmPglistAlloc(k.uvm, 256)!;
    expect(all[0].frame).toBe(0);
    uvmPglistFree(all);
    k.checkInvariants();
  });

  it('runs stay available while receive areas give their pages away and refill, and user pages churn', async () => {
    const k = new Kernel({ physPages: 512, swapPages: 0 });
    const procs: Proc[] = [k.createProcess(), k.createProcess()];
    /* four "receive areas" of 16 pages */
    const areas: VmPage[][] = [];
    for (let i = 0; i < 4; i++) areas.push(uvmPglistAlloc(k.uvm, 16)!);
    const userMaps: [Proc, number, number][] = [];
    const givenAway: VmPage[][] = [];
    const failsBefore = k.stats().pglistFailed;
    for (let round = 0; round < 80; round++) {
      /* user memory comes and goes, a page at a time (zero-fill faults; munmap of an older mapping) */
      const p = procs[round % 2];
      const n = 1 + ((round * 7) % 23);
      const va = p.mmap(n * P);
      await p.write(va, Buffer.alloc(n * P, round));
      userMaps.push([p, va, n]);
      if (userMaps.length > 4) {
        const [q, v, m] = userMaps.shift()!;
        q.munmap(v, m * P);
      }
      /* an area gives half its pages away (they live on elsewhere for a few rounds), then refills */
      const a = round % areas.length;
      const from = round % 2 === 0 ? 0 : 8;
      givenAway.push(areas[a].slice(from, from + 8));
      uvmPglistFree([...areas[a].slice(0, from), ...areas[a].slice(from + 8)]);
      const fresh = uvmPglistAlloc(k.uvm, 16);
      expect(fresh).not.toBeNull();
      areas[a] = fresh!;
      if (givenAway.length > 5) uvmPglistFree(givenAway.shift()!);
      k.checkInvariants();
    }
    expect(k.stats().pglistFailed).toBe(failsBefore);
    for (const pages of [...areas, ...givenAway]) uvmPglistFree(pages);
    for (const p of procs) p.exit();
    expect(k.stats().freePages).toBe(512);
    expect(k.uvm.free.blocks[9]).toBe(1);
    k.checkInvariants();
  });
});
