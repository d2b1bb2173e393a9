import { describe, expect, it } from 'vitest';
import { expectErrorSync, expectPanic, frameAt } from '../test/helpers.js';
import { Kernel, PAGE_SIZE, Prot } from './index.js';
import { uvmAnonAlloc, uvmAnonFree } from './uvm_anon.js';
import {
  checkPageArg,
  PG_BUSY,
  PG_CLEAN,
  PG_FAKE,
  PG_WANTED,
  PQ_ACTIVE,
  PQ_FREE,
  PQ_INACTIVE,
  PQ_NONE,
  uvmPageActivate,
  uvmPageAlloc,
  uvmPageDeactivate,
  uvmPageFree,
  uvmPageInsert,
  uvmPageUnbusy,
  uvmPageUnwire,
  uvmPageWaitBusy,
  uvmPageWire,
  type VmPage,
} from './uvm_page.js';

/* a kernel and a page owned by a fresh anon (an allocated page must have an owner) */
function anonPage(physPages = 8): { k: Kernel; pg: VmPage } {
  const k = new Kernel({ physPages, swapPages: 0 });
  const anon = uvmAnonAlloc(k.uvm);
  const pg = uvmPageAlloc(k.uvm, null, 0, anon);
  if (pg === null) throw new Error('no page');
  return { k, pg };
}

describe('uvmPageAlloc / uvmPageFree', () => {
  it('takes a page off the free queue BUSY|FAKE|CLEAN, owned by the anon, on no queue', () => {
    const { k, pg } = anonPage();
    expect(pg.flags).toBe(PG_BUSY | PG_FAKE | PG_CLEAN);
    expect(pg.queue).toBe(PQ_NONE);
    expect(pg.anonOwns).toBe(true);
    expect(pg.uanon?.page).toBe(pg);
    const s = k.stats();
    expect(s.freePages).toBe(7);
    expect(s.busyPages).toBe(1);
    expect(s.activePages + s.inactivePages).toBe(0);
    k.checkInvariants();
  });

  it('zero-fills on request and leaves old bytes otherwise', () => {
    const k = new Kernel({ physPages: 2, swapPages: 0 });
    k.uvm.ram.bytes.fill(0x5a);
    const a = uvmPageAlloc(k.uvm, null, 0, uvmAnonAlloc(k.uvm), true)!;
    expect(a.bytes().every((b) => b === 0)).toBe(true);
    const b = uvmPageAlloc(k.uvm, null, 0, uvmAnonAlloc(k.uvm), false)!;
    expect(b.bytes().every((x) => x === 0x5a)).toBe(true);
  });

  it('returns null when no page is free', () => {
    const k = new Kernel({ physPages: 2, swapPages: 0 });
    expect(uvmPageAlloc(k.uvm, null, 0, uvmAnonAlloc(k.uvm))).not.toBeNull();
    expect(uvmPageAlloc(k.uvm, null, 0, uvmAnonAlloc(k.uvm))).not.toBeNull();
    expect(uvmPageAlloc(k.uvm, null, 0, uvmAnonAlloc(k.uvm))).toBeNull();
    expect(k.stats().freePages).toBe(0);
  });

  it('free returns the page to the free queue, clears its owner, and unmaps it', async () => {
    const k = new Kernel({ physPages: 8, swapPages: 0 });
    const p = k.createProcess();
    const va = p.mmap(PAGE_SIZE);
    await p.write(va, Buffer.from('doomed'));
    const pg = k.uvm.pages[frameAt(p, va)];
    const anon = pg.uanon!;
    expect(k.uvm.mmu.mappings(pg.frame)).toHaveLength(1);
    uvmPageFree(pg);
    expect(pg.queue).toBe(PQ_FREE);
    expect(pg.flags).toBe(0);
    expect(pg.uanon).toBeNull();
    expect(anon.page).toBeNull();
    expect(k.uvm.mmu.pv[pg.frame]).toBeNull();
    expect(frameAt(p, va)).toBe(-1);
    expect(k.stats().freePages).toBe(8);
  });

  it('panics when freeing a free page', () => {
    const k = new Kernel({ physPages: 2, swapPages: 0 });
    expectPanic(() => uvmPageFree(k.uvm.pages[0]), /freeing free/);
  });

  it('free wakes whoever waits for the page', async () => {
    const { pg } = anonPage();
    let woke = false;
    const waiting = uvmPageWaitBusy(pg).then(() => {
      woke = true;
    });
    expect(pg.flags & PG_WANTED).toBe(PG_WANTED);
    uvmPageFree(pg);
    await waiting;
    expect(woke).toBe(true);
  });

  it('an anon that is freed frees its page', () => {
    const { k, pg } = anonPage();
    uvmPageUnbusy(pg);
    uvmPageActivate(pg);
    uvmAnonFree(pg.uanon!);
    expect(pg.queue).toBe(PQ_FREE);
    expect(k.stats().freePages).toBe(8);
    expect(k.stats().anons).toBe(0);
    k.checkInvariants();
  });
});

describe('page queues', () => {
  it('activate and deactivate move a page between queues and the counts follow', () => {
    const { k, pg } = anonPage();
    uvmPageUnbusy(pg);
    uvmPageActivate(pg);
    expect(pg.queue).toBe(PQ_ACTIVE);
    expect(k.stats()).toMatchObject({ activePages: 1, inactivePages: 0, freePages: 7 });
    uvmPageActivate(pg);
    expect(k.stats().activePages).toBe(1);
    uvmPageDeactivate(pg);
    expect(pg.queue).toBe(PQ_INACTIVE);
    expect(k.stats()).toMatchObject({ activePages: 0, inactivePages: 1 });
    uvmPageDeactivate(pg);
    expect(k.stats().inactivePages).toBe(1);
    uvmPageActivate(pg);
    expect(k.stats()).toMatchObject({ activePages: 1, inactivePages: 0 });
    k.checkInvariants();
  });

  it('deactivate clears the referenced bit so the pagedaemon sees a fresh second chance', async () => {
    const k = new Kernel({ physPages: 8, swapPages: 0 });
    const p = k.createProcess();
    const va = p.mmap(PAGE_SIZE);
    await p.write(va, Buffer.from([1]));
    const pg = k.uvm.pages[frameAt(p, va)];
    expect(k.uvm.mmu.isReferenced(pg.frame)).toBe(true);
    uvmPageDeactivate(pg);
    expect(k.uvm.mmu.isReferenced(pg.frame)).toBe(false);
    await p.read(va, 1);
    expect(k.uvm.mmu.isReferenced(pg.frame)).toBe(true);
  });

  it('a wired page keeps its queue but counts as wired, not active; nested wires need as many unwires', () => {
    const { k, pg } = anonPage();
    uvmPageUnbusy(pg);
    uvmPageActivate(pg);
    uvmPageWire(pg);
    uvmPageWire(pg);
    expect(pg.queue).toBe(PQ_ACTIVE);
    expect(pg.wireCount).toBe(2);
    expect(k.stats()).toMatchObject({ wiredPages: 1, activePages: 0 });
    uvmPageDeactivate(pg);
    expect(pg.queue).toBe(PQ_ACTIVE);
    uvmPageUnwire(pg);
    expect(k.stats().wiredPages).toBe(1);
    uvmPageUnwire(pg);
    expect(pg.queue).toBe(PQ_ACTIVE);
    expect(k.stats()).toMatchObject({ wiredPages: 0, activePages: 1 });
    expectPanic(() => uvmPageUnwire(pg), /isn't wired/);
    k.checkInvariants();
  });

  it('freeing a wired page unwires it', () => {
    const { k, pg } = anonPage();
    uvmPageUnbusy(pg);
    uvmPageWire(pg);
    uvmPageFree(pg);
    expect(k.stats()).toMatchObject({ wiredPages: 0, freePages: 8 });
    expect(pg.wireCount).toBe(0);
  });

  it('the queues stay linked when pages leave from the middle', () => {
    const k = new Kernel({ physPages: 6, swapPages: 0 });
    const pages = [0, 1, 2, 3].map(() => {
      const pg = uvmPageAlloc(k.uvm, null, 0, uvmAnonAlloc(k.uvm))!;
      uvmPageUnbusy(pg);
      uvmPageActivate(pg);
      return pg;
    });
    uvmPageDeactivate(pages[1]);
    uvmPageDeactivate(pages[3]);
    uvmPageFree(pages[2]);
    k.checkInvariants();
    const active: number[] = [];
    for (let pg = k.uvm.active.head; pg !== null; pg = pg.next) active.push(pg.frame);
    expect(active).toEqual([pages[0].frame]);
    const inactive: number[] = [];
    for (let pg = k.uvm.inactive.head; pg !== null; pg = pg.next) inactive.push(pg.frame);
    expect(inactive).toEqual([pages[1].frame, pages[3].frame]);
    expect(k.stats()).toMatchObject({ freePages: 3, activePages: 1, inactivePages: 2 });
  });
});

describe('BUSY / WANTED', () => {
  it('a waiter sleeps until the page is unbusied, then WANTED and BUSY are clear', async () => {
    const { pg } = anonPage();
    let woke = false;
    const waiting = uvmPageWaitBusy(pg).then(() => {
      woke = true;
    });
    await Promise.resolve();
    expect(woke).toBe(false);
    uvmPageUnbusy(pg);
    await waiting;
    expect(woke).toBe(true);
    expect(pg.flags & (PG_BUSY | PG_WANTED | PG_FAKE)).toBe(0);
    expect(pg.flags & PG_CLEAN).toBe(PG_CLEAN);
  });
});

describe('argument checks', () => {
  it('uvmPageInsert refuses a page already in an object', async () => {
    const k = new Kernel({ physPages: 8, swapPages: 0 });
    const p = k.createProcess();
    const va = p.mmap(PAGE_SIZE, { shared: true });
    await p.write(va, Buffer.from([1]));
    const pg = k.uvm.pages[frameAt(p, va)];
    expect(pg.uobject).not.toBeNull();
    expectPanic(() => uvmPageInsert(pg, pg.uobject!, 3), /already in an object/);
  });

  it('checkPageArg refuses what is not a vm_page', () => {
    expectErrorSync(() => checkPageArg('f', { frame: 1 }), 'EINVAL');
    expectErrorSync(() => checkPageArg('f', null), 'EINVAL');
    const k = new Kernel({ physPages: 1, swapPages: 0 });
    checkPageArg('f', k.uvm.pages[0]);
  });

  it('every process page write is counted: active pages grow, free pages shrink, exit gives all back', async () => {
    const k = new Kernel({ physPages: 32, swapPages: 0 });
    const p = k.createProcess();
    const va = p.mmap(5 * PAGE_SIZE, { prot: Prot.READ | Prot.WRITE });
    await p.write(va, Buffer.alloc(5 * PAGE_SIZE, 1));
    expect(k.stats()).toMatchObject({ freePages: 27, activePages: 5, anons: 5 });
    p.exit();
    expect(k.stats()).toMatchObject({ freePages: 32, activePages: 0, inactivePages: 0, anons: 0 });
    k.checkInvariants();
  });
});

describe('unwiring a page on no queue', () => {
  it('puts it on the active queue', () => {
    const { k, pg } = anonPage();
    uvmPageWire(pg);
    uvmPageUnbusy(pg);
    expect(pg.queue).toBe(PQ_NONE);
    uvmPageUnwire(pg);
    expect(pg.queue).toBe(PQ_ACTIVE);
    expect(k.stats()).toMatchObject({ wiredPages: 0, activePages: 1 });
    k.checkInvariants();
  });
});
