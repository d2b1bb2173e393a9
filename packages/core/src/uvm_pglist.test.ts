import { describe, expect, it } from 'vitest';
import { expectError, expectErrorSync, expectPanic } from '../test/helpers.js';
import {
  Kernel,
  PAGE_SIZE,
  uvmKmAllocContig,
  uvmKmAllocPage,
  uvmKmFreePage,
  uvmPglistAlloc,
  uvmPglistFree,
  type VmPage,
} from './index.js';
import { PG_BUSY, PQ_FREE, PQ_NONE } from './uvm_page.js';

/* hold: every free page as a 1-page run of kernel memory; returns them in frame order */
function holdAll(k: Kernel): VmPage[] {
  const out: VmPage[] = [];
  for (let run = uvmPglistAlloc(k.uvm, 1); run !== null; run = uvmPglistAlloc(k.uvm, 1)) out.push(run[0]);
  return out.sort((a, b) => a.frame - b.frame);
}

describe('uvmPglistAlloc', () => {
  it('hands out n contiguous pages in frame order as wired kernel memory, zero-filled', () => {
    const k = new Kernel({ physPages: 64, swapPages: 0 });
    k.uvm.ram.bytes.fill(0xa5);
    const run = uvmPglistAlloc(k.uvm, 5)!;
    expect(run.map((pg) => pg.frame - run[0].frame)).toEqual([0, 1, 2, 3, 4]);
    for (const pg of run) {
      expect(pg.uobject).toBe(k.uvm.kernelObject);
      expect(pg.offset).toBe(pg.frame);
      expect(pg.wireCount).toBe(1);
      expect(pg.queue).toBe(PQ_NONE);
      expect(pg.flags & PG_BUSY).toBe(0);
      expect(pg.bytes().every((b) => b === 0)).toBe(true);
    }
    const s = k.stats();
    expect([s.freePages, s.wiredPages, s.pglistAllocs, s.pglistFailed]).toEqual([59, 5, 1, 0]);
    expect(k.frameInfo(run[2].frame).state).toBe('kernel memory');
    k.checkInvariants();
  });

  it('leaves the old bytes when asked not to zero', () => {
    const k = new Kernel({ physPages: 8, swapPages: 0 });
    k.uvm.ram.bytes.fill(0xa5);
    const run = uvmPglistAlloc(k.uvm, 8, { zero: false })!;
    expect(run.every((pg) => pg.bytes().every((b) => b === 0xa5))).toBe(true);
  });

  it('returns null at once when no run is free, counted, and changes nothing else', () => {
    const k = new Kernel({ physPages: 16, swapPages: 0 });
    const held = holdAll(k);
    uvmPglistFree(held.filter((pg) => pg.frame % 2 === 1));
    const before = k.stats();
    expect(uvmPglistAlloc(k.uvm, 2)).toBeNull();
    const after = k.stats();
    expect(after.pglistAllocs - before.pglistAllocs).toBe(1);
    expect(after.pglistFailed - before.pglistFailed).toBe(1);
    expect({ ...after, pglistAllocs: 0, pglistFailed: 0 }).toEqual({
      ...before,
      pglistAllocs: 0,
      pglistFailed: 0,
    });
    expect(uvmPglistAlloc(k.uvm, 1)).not.toBeNull();
    k.checkInvariants();
  });

  it.each([
    ['no pages', 0],
    ['more pages than RAM', 17],
    ['a fraction', 1.5],
  ])('refuses %s (EINVAL) before anything is done', (_what, n) => {
    const k = new Kernel({ physPages: 16, swapPages: 0 });
    expectErrorSync(() => uvmPglistAlloc(k.uvm, n), 'EINVAL');
    expect(k.stats().pglistAllocs).toBe(0);
  });

  it('refuses a zero option that is not a boolean (EINVAL)', () => {
    const k = new Kernel({ physPages: 16, swapPages: 0 });
    expectErrorSync(() => uvmPglistAlloc(k.uvm, 1, { zero: 0 as never }), 'EINVAL');
    expect(k.stats().freePages).toBe(16);
  });
});

describe('uvmPglistFree', () => {
  it('gives the pages back, where they merge with their free neighbours into runs again', () => {
    const k = new Kernel({ physPages: 32, swapPages: 0 });
    const a = uvmPglistAlloc(k.uvm, 16)!;
    const b = uvmPglistAlloc(k.uvm, 16)!;
    expect(uvmPglistAlloc(k.uvm, 1)).toBeNull();
    uvmPglistFree(a.slice(4));
    uvmPglistFree(a.slice(0, 4));
    expect(k.stats()).toMatchObject({ freePages: 16, wiredPages: 16 });
    expect(uvmPglistAlloc(k.uvm, 16)?.[0].frame).toBe(a[0].frame);
    for (const pg of b) uvmKmFreePage(pg);
    expect(a.every((pg) => pg.queue !== PQ_FREE)).toBe(true);
    k.checkInvariants();
  });

  it('takes pages from uvmKmAllocPage too', async () => {
    const k = new Kernel({ physPages: 8, swapPages: 0 });
    const pg = await uvmKmAllocPage(k.uvm);
    uvmPglistFree([pg]);
    expect(k.stats()).toMatchObject({ freePages: 8, wiredPages: 0 });
    k.checkInvariants();
  });

  it('panics, freeing nothing, on a page that is not kernel memory or is listed twice', async () => {
    const k = new Kernel({ physPages: 16, swapPages: 0 });
    const p = k.createProcess();
    const va = p.mmap(PAGE_SIZE);
    await p.write(va, Buffer.from('x'));
    const user = k.uvm.pages[p.map.pmap.extract(va / PAGE_SIZE)];
    const run = uvmPglistAlloc(k.uvm, 2)!;
    const free = k.stats().freePages;
    expectPanic(() => uvmPglistFree([run[0], user]), /page \d+ isn't kernel memory/);
    expectPanic(() => uvmPglistFree([run[0], run[1], run[0]]), /listed twice/);
    expect(k.stats().freePages).toBe(free);
    uvmPglistFree(run);
    expectPanic(() => uvmPglistFree([run[0]]), /isn't kernel memory/);
    expect(run.every((pg) => pg.mark === 0)).toBe(true);
    k.checkInvariants();
  });

  it('refuses anything but an array of pages (EINVAL), naming a promise', () => {
    const k = new Kernel({ physPages: 4, swapPages: 0 });
    const run = uvmPglistAlloc(k.uvm, 1)!;
    const err = expectErrorSync(() => uvmPglistFree(Promise.resolve(run) as never), 'EINVAL');
    expect(err.message).toMatch(/forgotten await/);
    expectErrorSync(() => uvmPglistFree([run[0], {}] as never), 'EINVAL');
    expect(run[0].wireCount).toBe(1);
  });
});

describe('uvmKmAllocContig', () => {
  it('returns a free run at once', async () => {
    const k = new Kernel({ physPages: 32, swapPages: 0 });
    const run = await uvmKmAllocContig(k.uvm, 8);
    expect(run.map((pg) => pg.frame - run[0].frame)).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    expect(k.stats()).toMatchObject({ pglistAllocs: 1, pglistFailed: 0 });
    expect(k.uvm.exp.pdaemonRuns).toBe(0);
  });

  it('waits for the pagedaemon three times, then fails with ENOMEM -- never hangs', async () => {
    const k = new Kernel({ physPages: 32, swapPages: 0 });
    const held = holdAll(k);
    uvmPglistFree(held.filter((pg) => pg.frame % 4 !== 0));
    const before = k.stats();
    await expectError(uvmKmAllocContig(k.uvm, 4), 'ENOMEM');
    expect(k.stats().pglistAllocs - before.pglistAllocs).toBe(4);
    expect(k.stats().pglistFailed - before.pglistFailed).toBe(4);
    expect(k.uvm.exp.pdaemonRuns).toBe(3);
    k.checkInvariants();
  });
});
