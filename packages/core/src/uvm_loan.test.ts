/*
 * uvm_loan.test.ts: unit tests of page loanout, one describe per rule of uvm_loan.ts (and of the
 * NetBSD seed, uvm_loan.c rev 1.20): where each page comes from, what a loan does to the page and its
 * mappings, the shared zero page, failure part-way, the races around pager I/O, loan breaking, orphans
 * and adoption, the pagedaemon, fatal misuse, and the counters.
 */
import fs from 'node:fs/promises';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { expectErrorSync } from '../test/helpers.js';
import {
  anonAt,
  entryAt,
  expectAllFree,
  expectKernelError,
  fill,
  hog,
  hookOnce,
  makeTmpDir,
  objectPage,
  pattern,
  type TmpDir,
  tick,
} from '../test/loan-helpers.js';
import {
  type IoEvent,
  Kernel,
  KernelError,
  KernelPanic,
  PAGE_SIZE,
  Prot,
  uvmLoan,
  uvmUnloanAnons,
  uvmUnloanPages,
  VM_MAX_ADDRESS,
  type VmPage,
  type VnodeObject,
} from './index.js';
import { Inherit } from './param.js';
import { amapAdd, amapAlloc } from './uvm_amap.js';
import { MapEntry, uvmMapInsert, VmMap } from './uvm_map.js';
import { PQ_ACTIVE, PQ_FREE, PQ_INACTIVE, PQ_NONE, uvmPageActivate, uvmPageDeactivate } from './uvm_page.js';

const P = PAGE_SIZE;

let tmp: TmpDir;
beforeEach(async () => {
  tmp = await makeTmpDir();
});
afterEach(async () => {
  await tmp.remove();
});

/* a process with an anonymous region of `npages`, the first `written` of them written */
async function anonRegion(k: Kernel, npages: number, written: number, seed = 1) {
  const p = k.createProcess();
  const va = p.mmap(npages * P);
  const data = pattern(seed, npages * P);
  if (written > 0) await p.write(va, data.subarray(0, written * P));
  return { p, va, data };
}

/* a real file of `npages` distinct pages, mapped by a new process */
async function fileRegion(
  k: Kernel,
  npages: number,
  opts: { shared?: boolean; prot?: number } = {},
  seed = 7,
) {
  const data = pattern(seed, npages * P);
  const file = await tmp.file(`f${seed}-${npages}`, data);
  const p = k.createProcess();
  const va = await p.mmapFile(file, { prot: opts.prot ?? Prot.READ, shared: opts.shared });
  return { p, va, data, file };
}

function ioEvents(k: Kernel): IoEvent[] {
  const evs: IoEvent[] = [];
  k.setIoHook((ev) => {
    evs.push(ev);
  });
  return evs;
}

describe('1. where each page comes from: anon layer, then object, then zero-fill', () => {
  it('loans the anon layer first: a written page of a private file mapping is the anon copy, not the file page', async () => {
    const k = new Kernel({ physPages: 256 });
    const { p, va, data } = await fileRegion(k, 2, { prot: Prot.READ | Prot.WRITE });
    await p.write(va, fill(0x5a, 100));
    const filePage = objectPage(p, va);
    const anon = anonAt(p, va)!;
    const [pg] = await uvmLoan(p.map, va, P, 'kernel');
    k.checkInvariants();
    expect(pg).toBe(anon.page);
    expect(pg).not.toBe(filePage);
    expect(pg.uobject).toBeNull();
    expect(pg.anonOwns).toBe(true);
    expect(pg.bytes().subarray(0, 100)).toEqual(fill(0x5a, 100));
    expect(pg.bytes().subarray(100)).toEqual(data.subarray(100, P));
    expect(k.stats().loansAnon).toBe(1);
    expect(k.stats().loansObj).toBe(0);
    uvmUnloanPages([pg]);
    await expectAllFree(k);
  });

  it('gets a non-resident file page from the pager, with I/O (O->K)', async () => {
    const k = new Kernel({ physPages: 256 });
    const { p, va, data } = await fileRegion(k, 3);
    const evs = ioEvents(k);
    expect(objectPage(p, va + P)).toBeNull();
    const pages = await uvmLoan(p.map, va + P, P, 'kernel');
    k.checkInvariants();
    expect(evs.map((e) => [e.kind, e.offset])).toEqual([['vnode-read', 1]]);
    expect(pages[0]).toBe(objectPage(p, va + P));
    expect(pages[0].uobject).toBe(entryAt(p, va).object);
    expect(pages[0].offset).toBe(1);
    expect(pages[0].bytes()).toEqual(data.subarray(P, 2 * P));
    expect(k.stats().pageins).toBe(1);
    expect(k.stats().loansObj).toBe(1);
    uvmUnloanPages(pages);
    await expectAllFree(k);
  });

  it('loans an already resident object page with no I/O', async () => {
    const k = new Kernel({ physPages: 256 });
    const { p, va, data } = await fileRegion(k, 2);
    expect(await p.read(va, 8)).toEqual(data.subarray(0, 8));
    const evs = ioEvents(k);
    const [pg] = await uvmLoan(p.map, va, P, 'kernel');
    expect(evs).toEqual([]);
    expect(pg).toBe(objectPage(p, va));
    uvmUnloanPages([pg]);
    await expectAllFree(k);
  });

  it('zero-fills copy-on-write memory never touched, allocating nothing in the process', async () => {
    const k = new Kernel({ physPages: 256 });
    const { p, va } = await anonRegion(k, 2, 0);
    const pages = await uvmLoan(p.map, va, 2 * P, 'kernel');
    k.checkInvariants();
    expect(pages[0]).toBe(pages[1]);
    expect(pages[0].uobject).toBe(k.uvm.zeroObject);
    expect(pages[0].bytes()).toEqual(Buffer.alloc(P));
    expect(entryAt(p, va).amap).toBeNull();
    expect(k.stats().loansZero).toBe(2);
    uvmUnloanPages(pages);
    await expectAllFree(k);
  });

  it('a range mixing anon, zero-fill and file pages loans all of them in one call (kernel and anon)', async () => {
    const k = new Kernel({ physPages: 256 });
    const { p, va, data } = await anonRegion(k, 2, 1);
    const fdata = pattern(9, 2 * P);
    const fva = await p.mmapFile(await tmp.file('mixed', fdata));
    expect(fva).toBe(va + 2 * P);
    const pages = await uvmLoan(p.map, va, 3 * P, 'kernel');
    k.checkInvariants();
    expect(pages).toHaveLength(3);
    expect(pages[0]).toBe(anonAt(p, va)!.page);
    expect(pages[0].bytes()).toEqual(data.subarray(0, P));
    expect(pages[1].uobject).toBe(k.uvm.zeroObject);
    expect(pages[1].bytes()).toEqual(Buffer.alloc(P));
    expect(pages[2].uobject).toBe(entryAt(p, fva).object);
    expect(pages[2].bytes()).toEqual(fdata.subarray(0, P));
    expect(pages.map((pg) => pg.loanCount)).toEqual([1, 1, 1]);

    const anons = await uvmLoan(p.map, va, 3 * P, 'anon');
    k.checkInvariants();
    expect(anons[0]).toBe(anonAt(p, va));
    expect(anons[1].page).toBe(pages[1]);
    expect(anons[2].page).toBe(pages[2]);
    expect(anons[2].page!.uobject).toBe(entryAt(p, fva).object);
    const s = k.stats();
    expect([s.loansAnon, s.loansZero, s.loansObj, s.loansOA]).toEqual([2, 2, 1, 1]);
    uvmUnloanPages(pages);
    uvmUnloanAnons(anons);
    await expectAllFree(k);
  });

  it('a range spanning several entries of different kinds crosses entry boundaries', async () => {
    const k = new Kernel({ physPages: 256 });
    const p = k.createProcess();
    const a = p.mmap(2 * P);
    const b = p.mmap(P, { shared: true });
    const c = p.mmap(2 * P);
    expect([b, c]).toEqual([a + 2 * P, a + 3 * P]);
    await p.write(a + P, fill(1));
    await p.write(b, fill(2));
    await p.write(c + P, fill(3));
    const pages = await uvmLoan(p.map, a, 5 * P, 'kernel');
    k.checkInvariants();
    expect(pages.map((pg) => pg.bytes()[0])).toEqual([0, 1, 2, 0, 3]);
    expect(pages[0]).toBe(pages[3]);
    expect(pages[2]).toBe(objectPage(p, b));
    uvmUnloanPages(pages);
    await expectAllFree(k);
  });

  it('fails with EFAULT on an unmapped page and on a null map entry (no amap, no object, not COW)', async () => {
    const k = new Kernel({ physPages: 64 });
    const p = k.createProcess();
    await expectKernelError(uvmLoan(p.map, 0x10000, P, 'kernel'), 'EFAULT');
    uvmMapInsert(
      p.map,
      new MapEntry({
        start: 0x20000,
        end: 0x20000 + 2 * P,
        prot: Prot.READ,
        maxProt: Prot.READ,
        inheritance: Inherit.NONE,
        copyOnWrite: false,
        needsCopy: false,
        object: null,
        objOffset: 0,
      }),
    );
    const err = await expectKernelError(uvmLoan(p.map, 0x20000, P, 'kernel'), 'EFAULT');
    expect(err.message).toMatch(/uvm_loan/);
    await expectKernelError(uvmLoan(p.map, 0x20000, 2 * P, 'anon'), 'EFAULT');
    k.checkInvariants();
    expect(k.stats().loans).toBe(0);
  });

  it('loans to anons in the same order: A->A, then O->A, then the zero page', async () => {
    const k = new Kernel({ physPages: 256 });
    const { p, va } = await fileRegion(k, 3, { prot: Prot.READ | Prot.WRITE });
    await p.write(va, fill(0x11));
    const anons = await uvmLoan(p.map, va, 2 * P, 'anon');
    expect(anons[0]).toBe(anonAt(p, va));
    expect(anons[0].ref).toBe(2);
    expect(anons[1].page).toBe(objectPage(p, va + P));
    expect(anons[1].page!.anonOwns).toBe(false);
    uvmUnloanAnons(anons);
    await expectAllFree(k);
  });
});

describe('2. kernel loans: read-only mappings, loanCount, wired', () => {
  it('the first loan write-protects every mapping, including a forked child sharing the page', async () => {
    const k = new Kernel({ physPages: 256 });
    const parent = k.createProcess();
    const va = parent.mmap(2 * P, { shared: true });
    await parent.write(va, fill(0x41));
    const child = parent.fork();
    await child.write(va + 8, fill(0x42, 8));
    const frame = objectPage(parent, va)!.frame;
    expect(k.uvm.mmu.mappings(frame)).toHaveLength(2);
    expect(k.uvm.mmu.maxProt(frame) & Prot.WRITE).toBe(Prot.WRITE);

    const [pg] = await uvmLoan(parent.map, va, P, 'kernel');
    k.checkInvariants();
    expect(pg.frame).toBe(frame);
    expect(pg.loanCount).toBe(1);
    const maps = k.uvm.mmu.mappings(frame);
    expect(maps).toHaveLength(2);
    for (const m of maps) expect(m.prot).toBe(Prot.READ);
    expect(k.uvm.mmu.maxProt(frame)).toBe(Prot.READ);
    const before = Buffer.from(pg.bytes());

    /* a later write (from the child) faults and breaks the loan; both processes see it */
    await child.write(va, fill(0x43, 4));
    k.checkInvariants();
    expect(pg.bytes()).toEqual(before);
    expect(await parent.read(va, 4)).toEqual(fill(0x43, 4));
    expect(k.stats().loanBreaks).toBe(1);
    uvmUnloanPages([pg]);
    await expectAllFree(k);
  });

  it('a write through a mapping of a loaned private page faults (the pmap no longer allows it)', async () => {
    const k = new Kernel({ physPages: 128 });
    const { p, va } = await anonRegion(k, 1, 1);
    const vpn = va / P;
    expect(p.map.pmap.translate(vpn, Prot.WRITE)).toBeGreaterThanOrEqual(0);
    const pages = await uvmLoan(p.map, va, P, 'kernel');
    expect(p.map.pmap.translate(vpn, Prot.WRITE)).toBe(-1);
    expect(p.map.pmap.translate(vpn, Prot.READ)).toBe(pages[0].frame);
    const faults = k.stats().faults;
    await p.write(va, fill(9, 1));
    expect(k.stats().faults).toBe(faults + 1);
    uvmUnloanPages(pages);
    await expectAllFree(k);
  });

  it('each loan counts: loanCount and wireCount go up together; the page counts as wired, not active', async () => {
    const k = new Kernel({ physPages: 128 });
    const { p, va } = await anonRegion(k, 1, 1);
    const pg = anonAt(p, va)!.page!;
    expect(pg.queue).toBe(PQ_ACTIVE);
    const a = await uvmLoan(p.map, va, P, 'kernel');
    const b = await uvmLoan(p.map, va, P, 'kernel');
    k.checkInvariants();
    expect(a[0]).toBe(pg);
    expect(b[0]).toBe(pg);
    expect(pg.loanCount).toBe(2);
    expect(pg.wireCount).toBe(2);
    expect(k.stats().wiredPages).toBe(1);
    expect(k.stats().activePages + k.stats().inactivePages).toBe(0);
    expect(k.stats().loanedPages).toBe(1);
    uvmUnloanPages(a);
    expect([pg.loanCount, pg.wireCount]).toEqual([1, 1]);
    uvmUnloanPages(b);
    k.checkInvariants();
    expect([pg.loanCount, pg.wireCount]).toEqual([0, 0]);
    expect([PQ_ACTIVE, PQ_INACTIVE]).toContain(pg.queue);
    expect(pg.anonOwns).toBe(true);
    await expectAllFree(k);
  });

  it('the pagedaemon never takes a kernel-loaned page, even when memory runs out', async () => {
    const k = new Kernel({ physPages: 48, swapPages: 512 });
    const { p, va, data } = await anonRegion(k, 4, 4);
    const { va: fva, data: fdata } = await (async () => {
      const d = pattern(3, 2 * P);
      const fv = await p.mmapFile(await tmp.file('wired', d));
      return { va: fv, data: d };
    })();
    const pages = [
      ...(await uvmLoan(p.map, va, 4 * P, 'kernel')),
      ...(await uvmLoan(p.map, fva, 2 * P, 'kernel')),
    ];
    const frames = pages.map((pg) => pg.frame);
    const hogs = [await hog(k, 120), await hog(k, 60, 0x77)];
    for (let i = 0; i < 4; i++) await k.pagedaemon.run();
    await k.idle();
    k.checkInvariants();
    expect(k.stats().pageouts).toBeGreaterThan(60);
    expect(pages.map((pg) => pg.frame)).toEqual(frames);
    for (const pg of pages) {
      expect(pg.wireCount).toBe(1);
      expect(pg.loanCount).toBe(1);
    }
    expect(pages.slice(0, 4).map((pg) => pg.anonOwns)).toEqual([true, true, true, true]);
    expect(Buffer.concat(pages.slice(0, 4).map((pg) => pg.bytes()))).toEqual(data);
    expect(Buffer.concat(pages.slice(4).map((pg) => pg.bytes()))).toEqual(fdata);
    expect(await hogs[0].read(hogs[0].map.entries[0].start + 119 * P, 1)).toEqual(fill(0xee, 1));
    uvmUnloanPages(pages);
    await expectAllFree(k);
  });
});

describe('3. loans to anons: O->A keeps the object owner; A->A is one more reference', () => {
  it('O->A: the page keeps its object, gains uanon, anonOwns stays clear; a second loan reuses pg.uanon', async () => {
    const k = new Kernel({ physPages: 128 });
    const { p, va, data } = await fileRegion(k, 2);
    const obj = entryAt(p, va).object;
    const [a1] = await uvmLoan(p.map, va + P, P, 'anon');
    k.checkInvariants();
    const pg = a1.page!;
    expect(pg.uobject).toBe(obj);
    expect(pg.offset).toBe(1);
    expect(pg.uanon).toBe(a1);
    expect(pg.anonOwns).toBe(false);
    expect(pg.loanCount).toBe(1);
    expect(pg.wireCount).toBe(0);
    expect(a1.ref).toBe(1);
    expect(pg.bytes()).toEqual(data.subarray(P));

    const [a2] = await uvmLoan(p.map, va + P, P, 'anon');
    k.checkInvariants();
    expect(a2).toBe(a1);
    expect(a1.ref).toBe(2);
    expect(pg.loanCount).toBe(1);
    expect(k.stats().loansOA).toBe(2);
    expect(k.stats().anons).toBe(1);

    uvmUnloanAnons([a1]);
    expect(pg.uanon).toBe(a1);
    uvmUnloanAnons([a2]);
    k.checkInvariants();
    expect(pg.uanon).toBeNull();
    expect(pg.loanCount).toBe(0);
    expect(pg.uobject).toBe(obj);
    expect(k.stats().anons).toBe(0);
    await expectAllFree(k);
  });

  it('O->A write-protects a writable shared mapping of the page', async () => {
    const k = new Kernel({ physPages: 128 });
    const { p, va } = await fileRegion(k, 1, { shared: true, prot: Prot.READ | Prot.WRITE });
    await p.write(va, fill(0x61, 10));
    const frame = objectPage(p, va)!.frame;
    expect(k.uvm.mmu.maxProt(frame)).toBe(Prot.READ | Prot.WRITE);
    const anons = await uvmLoan(p.map, va, P, 'anon');
    expect(k.uvm.mmu.maxProt(frame)).toBe(Prot.READ);
    k.checkInvariants();
    uvmUnloanAnons(anons);
    await expectAllFree(k);
  });

  it('O->A and O->K of the same page at once: loanCount 2, one wire', async () => {
    const k = new Kernel({ physPages: 128 });
    const { p, va } = await fileRegion(k, 1);
    const anons = await uvmLoan(p.map, va, P, 'anon');
    const pages = await uvmLoan(p.map, va, P, 'kernel');
    k.checkInvariants();
    expect(pages[0]).toBe(anons[0].page);
    expect(pages[0].loanCount).toBe(2);
    expect(pages[0].wireCount).toBe(1);
    uvmUnloanPages(pages);
    expect(pages[0].loanCount).toBe(1);
    uvmUnloanAnons(anons);
    expect(pages[0].loanCount).toBe(0);
    await expectAllFree(k);
  });

  it('A->A: the same anon comes back with one more reference; its only mapping becomes read-only', async () => {
    const k = new Kernel({ physPages: 128 });
    const { p, va, data } = await anonRegion(k, 2, 2);
    const anon = anonAt(p, va)!;
    const pg = anon.page!;
    expect(k.uvm.mmu.maxProt(pg.frame)).toBe(Prot.READ | Prot.WRITE);
    const anons = await uvmLoan(p.map, va, P, 'anon');
    k.checkInvariants();
    expect(anons[0]).toBe(anon);
    expect(anon.ref).toBe(2);
    expect(pg.loanCount).toBe(0);
    expect(pg.wireCount).toBe(0);
    expect(k.uvm.mmu.maxProt(pg.frame)).toBe(Prot.READ);

    /* the owner's write copies (COW): the loan keeps the page and its bytes */
    await p.write(va, fill(0x99, 4));
    k.checkInvariants();
    expect(anonAt(p, va)).not.toBe(anon);
    expect(anon.ref).toBe(1);
    expect(anon.page).toBe(pg);
    expect(pg.bytes()).toEqual(data.subarray(0, P));
    expect(k.stats().cowFaults).toBe(1);
    expect(k.stats().loanBreaks).toBe(0);
    uvmUnloanAnons(anons);
    await expectAllFree(k);
  });

  it('A->A in a mapping shared by fork (inherit share): a write by one sharer reaches the other, not the loan', async () => {
    const k = new Kernel({ physPages: 128 });
    const p = k.createProcess();
    const va = p.mmap(P, { inherit: Inherit.SHARE });
    await p.write(va, fill(1));
    const c = p.fork();
    expect(await c.read(va, 4)).toEqual(fill(1, 4));
    const anons = await uvmLoan(p.map, va, P, 'anon');
    expect(anons[0].ref).toBe(2);
    await p.write(va, fill(2, 4));
    k.checkInvariants();
    expect(anonAt(c, va)).toBe(anonAt(p, va));
    expect(anonAt(p, va)).not.toBe(anons[0]);
    expect(await c.read(va, 4)).toEqual(fill(2, 4));
    expect(anons[0].page!.bytes()).toEqual(fill(1));
    await c.write(va + 4, fill(3, 4));
    expect(await p.read(va, 8)).toEqual(Buffer.concat([fill(2, 4), fill(3, 4)]));
    expect(anons[0].page!.bytes()).toEqual(fill(1));
    uvmUnloanAnons(anons);
    await expectAllFree(k);
  });

  it('A->A of an anon already shared (after fork) just adds a reference', async () => {
    const k = new Kernel({ physPages: 128 });
    const { p, va } = await anonRegion(k, 1, 1);
    const child = p.fork();
    expect(await child.read(va, 1)).toEqual(pattern(1, 1));
    const anon = anonAt(p, va)!;
    expect(anon.ref).toBe(2);
    const anons = await uvmLoan(child.map, va, P, 'anon');
    expect(anons[0]).toBe(anon);
    expect(anon.ref).toBe(3);
    k.checkInvariants();
    expect(k.uvm.mmu.maxProt(anon.page!.frame)).toBe(Prot.READ);
    uvmUnloanAnons(anons);
    expect(anon.ref).toBe(2);
    await expectAllFree(k);
  });
});

describe('4. zero-fill loans share one read-only zero page', () => {
  it('the same frame for every zero page, call and target; freed when its last loan ends', async () => {
    const k = new Kernel({ physPages: 128 });
    const free0 = k.stats().freePages;
    const p = k.createProcess();
    const va = p.mmap(8 * P);
    const q = k.createProcess();
    const vb = q.mmap(2 * P);
    const k1 = await uvmLoan(p.map, va, 3 * P, 'kernel');
    const k2 = await uvmLoan(q.map, vb, 2 * P, 'kernel');
    const a1 = await uvmLoan(p.map, va + 4 * P, 4 * P, 'anon');
    k.checkInvariants();
    const zp = k1[0];
    for (const pg of [...k1, ...k2]) expect(pg).toBe(zp);
    for (const a of a1) expect(a).toBe(a1[0]);
    expect(a1[0].page).toBe(zp);
    expect(a1[0].ref).toBe(4);
    expect(zp.uobject).toBe(k.uvm.zeroObject);
    expect(zp.loanCount).toBe(6);
    expect(zp.wireCount).toBe(5);
    expect(zp.bytes()).toEqual(Buffer.alloc(P));
    expect(k.uvm.mmu.mappings(zp.frame)).toEqual([]);
    expect(k.stats().freePages).toBe(free0 - 1);
    expect(k.stats().loansZero).toBe(9);

    uvmUnloanPages(k1);
    uvmUnloanAnons(a1);
    expect(zp.queue).not.toBe(PQ_FREE);
    uvmUnloanPages(k2);
    k.checkInvariants();
    expect(zp.queue).toBe(PQ_FREE);
    expect(k.uvm.zeroObject.resident).toBe(0);
    expect(k.stats().freePages).toBe(free0);
    await expectAllFree(k);
  });

  it('a user write to zero-loaned memory gets a page of its own; the zero page stays zero', async () => {
    const k = new Kernel({ physPages: 128 });
    const p = k.createProcess();
    const va = p.mmap(P);
    const [zp] = await uvmLoan(p.map, va, P, 'kernel');
    await p.write(va, fill(0xff));
    k.checkInvariants();
    expect(anonAt(p, va)!.page).not.toBe(zp);
    expect(await p.read(va, P)).toEqual(fill(0xff));
    expect(zp.bytes()).toEqual(Buffer.alloc(P));
    expect(k.stats().zeroFills).toBe(1);
    uvmUnloanPages([zp]);
    await expectAllFree(k);
  });

  it('a zero page loaned only to anons is freed by the last anon unloan and never taken by the pagedaemon', async () => {
    const k = new Kernel({ physPages: 32, swapPages: 128 });
    const p = k.createProcess();
    const va = p.mmap(2 * P);
    const anons = await uvmLoan(p.map, va, 2 * P, 'anon');
    const zp = anons[0].page!;
    uvmPageDeactivate(zp);
    await hog(k, 60);
    k.checkInvariants();
    expect(zp.uobject).toBe(k.uvm.zeroObject);
    expect(anons[0].page).toBe(zp);
    expect(zp.bytes()).toEqual(Buffer.alloc(P));
    uvmUnloanAnons(anons);
    expect(zp.queue).toBe(PQ_FREE);
    await expectAllFree(k);
  });

  it('after the zero page is freed, a new zero loan makes a fresh zero page', async () => {
    const k = new Kernel({ physPages: 64 });
    const p = k.createProcess();
    const va = p.mmap(P);
    uvmUnloanPages(await uvmLoan(p.map, va, P, 'kernel'));
    const [zp] = await uvmLoan(p.map, va, P, 'kernel');
    expect(zp.uobject).toBe(k.uvm.zeroObject);
    expect(zp.bytes()).toEqual(Buffer.alloc(P));
    expect(zp.loanCount).toBe(1);
    uvmUnloanPages([zp]);
    await expectAllFree(k);
  });
});

describe('5. failure part-way drops every loan already taken', () => {
  async function fourPages(k: Kernel) {
    const { p, va } = await anonRegion(k, 4, 2);
    return { p, va };
  }

  function loanState(k: Kernel) {
    const s = k.stats();
    return { loaned: s.loanedPages, wired: s.wiredPages, anons: s.anons };
  }

  it('an unmapped third page: EFAULT, nothing left loaned or wired (kernel and anon)', async () => {
    const k = new Kernel({ physPages: 128 });
    const { p, va } = await fourPages(k);
    const before = loanState(k);
    p.munmap(va + 2 * P, P);
    await expectKernelError(uvmLoan(p.map, va, 4 * P, 'kernel'), 'EFAULT');
    k.checkInvariants();
    expect(loanState(k)).toEqual(before);
    expect(anonAt(p, va)!.page!.loanCount).toBe(0);
    await expectKernelError(uvmLoan(p.map, va, 4 * P, 'anon'), 'EFAULT');
    k.checkInvariants();
    expect(anonAt(p, va)!.ref).toBe(1);
    expect(anonAt(p, va + P)!.ref).toBe(1);
    expect(loanState(k)).toEqual(before);
    expect(k.stats().unloans).toBe(4);
    await expectAllFree(k);
  });

  it('zero-fill loans taken before the failure are dropped too: the zero page goes away', async () => {
    const k = new Kernel({ physPages: 128 });
    const { p, va } = await anonRegion(k, 4, 1);
    p.munmap(va + 3 * P, P);
    const free0 = k.stats().freePages;
    for (const to of ['kernel', 'anon'] as const) {
      await expectKernelError(uvmLoan(p.map, va, 4 * P, to), 'EFAULT');
      k.checkInvariants();
      const s = k.stats();
      expect([s.loanedPages, s.wiredPages, s.anons, s.freePages]).toEqual([0, 0, 1, free0]);
      expect(k.uvm.zeroObject.resident).toBe(0);
    }
    const s = k.stats();
    expect([s.loansAnon, s.loansZero, s.unloans]).toEqual([2, 4, 6]);
    await expectAllFree(k);
  });

  it('an unreadable third page (mprotect NONE): EFAULT, nothing left loaned', async () => {
    const k = new Kernel({ physPages: 128 });
    const { p, va } = await fourPages(k);
    const before = loanState(k);
    p.mprotect(va + 2 * P, P, Prot.NONE);
    await expectKernelError(uvmLoan(p.map, va, 4 * P, 'kernel'), 'EFAULT');
    await expectKernelError(uvmLoan(p.map, va, 4 * P, 'anon'), 'EFAULT');
    k.checkInvariants();
    expect(loanState(k)).toEqual(before);
    /* the first two pages are writable again: no loan left to protect them */
    await p.write(va, fill(1, 2 * P));
    expect(k.stats().loanBreaks).toBe(0);
    expect(k.stats().cowFaults).toBe(0);
    await expectAllFree(k);
  });

  it('pages beyond the end of the object: EFAULT after the pages before it were loaned', async () => {
    const k = new Kernel({ physPages: 128 });
    const data = pattern(4, 2 * P);
    const p = k.createProcess();
    const va = await p.mmapFile(await tmp.file('short', data), { length: 4 * P });
    await expectKernelError(uvmLoan(p.map, va, 4 * P, 'kernel'), 'EFAULT');
    k.checkInvariants();
    expect(k.stats().loanedPages).toBe(0);
    expect(k.stats().wiredPages).toBe(0);
    expect(objectPage(p, va)!.loanCount).toBe(0);
    const ok = await uvmLoan(p.map, va, 2 * P, 'anon');
    expect(ok[1].page!.bytes()).toEqual(data.subarray(P));
    uvmUnloanAnons(ok);
    await expectAllFree(k);
  });

  it('a pager EIO part-way (the read of the third page fails): the error, and no loans left', async () => {
    const k = new Kernel({ physPages: 128 });
    const data = pattern(5, 4 * P);
    const p = k.createProcess();
    const va = await p.mmapFile(await tmp.file('eio', data));
    k.setIoHook((ev) => {
      if (ev.kind === 'vnode-read' && ev.offset === 2) throw new Error('disk on fire');
    });
    for (const to of ['kernel', 'anon'] as const) {
      const err = await expectKernelError(uvmLoan(p.map, va, 4 * P, to), 'EIO');
      expect(err.message).toMatch(/disk on fire/);
      k.checkInvariants();
      const s = k.stats();
      expect([s.loanedPages, s.wiredPages, s.anons, s.busyPages]).toEqual([0, 0, 0, 0]);
      expect(objectPage(p, va + 2 * P)).toBeNull();
      expect(objectPage(p, va)!.loanCount).toBe(0);
    }
    k.setIoHook(null);
    const pages = await uvmLoan(p.map, va, 4 * P, 'kernel');
    expect(Buffer.concat(pages.map((pg) => pg.bytes()))).toEqual(data);
    uvmUnloanPages(pages);
    await expectAllFree(k);
  });

  it('a KernelError thrown by the pager keeps its code (ENOSPC here)', async () => {
    const k = new Kernel({ physPages: 64 });
    const { p, va } = await fileRegion(k, 2);
    k.setIoHook((ev) => {
      if (ev.kind === 'vnode-read' && ev.offset === 1) throw new KernelError('ENOSPC', 'test: no space');
    });
    await expectKernelError(uvmLoan(p.map, va, 2 * P, 'kernel'), 'ENOSPC');
    k.checkInvariants();
    expect(k.stats().loanedPages).toBe(0);
    k.setIoHook(null);
    await expectAllFree(k);
  });

  it('no memory left for a zero page: ENOMEM with the loans before it dropped', async () => {
    const k = new Kernel({ physPages: 8, swapPages: 0 });
    const p = k.createProcess();
    const va = p.mmap(8 * P);
    await p.write(va, fill(3, 2 * P));
    const rest = k.createProcess();
    const vr = rest.mmap(16 * P);
    for (let i = 0; k.stats().freePages > 0; i++) await rest.write(vr + i * P, fill(4, 1));
    await expectKernelError(uvmLoan(p.map, va, 3 * P, 'kernel'), 'ENOMEM');
    k.checkInvariants();
    expect(k.stats().loanedPages).toBe(0);
    expect(k.stats().wiredPages).toBe(0);
    await expectAllFree(k);
  });
});

describe('6. pager I/O part-way: the races the seed defends against', () => {
  it('the map changes elsewhere during the vnode read: relookup, one read, loan correct', async () => {
    const k = new Kernel({ physPages: 128 });
    const { p, va, data } = await fileRegion(k, 2);
    const other = p.mmap(3 * P);
    const v0 = p.map.version;
    const h = hookOnce(
      k,
      (ev) => ev.kind === 'vnode-read',
      () => {
        p.munmap(other + P, P);
        p.mprotect(other, P, Prot.READ);
      },
    );
    const pages = await uvmLoan(p.map, va, 2 * P, 'kernel');
    k.checkInvariants();
    expect(h.fired()).toBe(1);
    expect(p.map.version).toBeGreaterThan(v0);
    expect(Buffer.concat(pages.map((pg) => pg.bytes()))).toEqual(data);
    expect(pages[0]).toBe(objectPage(p, va));
    expect(pages[0].loanCount).toBe(1);
    expect(k.stats().pageins).toBe(2);
    uvmUnloanPages(pages);
    await expectAllFree(k);
  });

  it('the page is RELEASED during the read (object truncated): relookup, then EFAULT, nothing leaked', async () => {
    const k = new Kernel({ physPages: 128 });
    const { p, va } = await fileRegion(k, 3);
    const obj = entryAt(p, va).object!;
    hookOnce(
      k,
      (ev) => ev.kind === 'vnode-read' && ev.offset === 1,
      () => obj.truncate(1),
    );
    await expectKernelError(uvmLoan(p.map, va, 3 * P, 'kernel'), 'EFAULT');
    k.checkInvariants();
    expect(obj.pages[1]).toBeUndefined();
    expect(obj.resident).toBe(1);
    expect(k.stats().loanedPages).toBe(0);
    await expectAllFree(k);
  });

  it('the page is RELEASED during the read, but not a page we still need: the loan succeeds', async () => {
    const k = new Kernel({ physPages: 128 });
    const { p, va, data } = await fileRegion(k, 3);
    const obj = entryAt(p, va).object!;
    const q = k.createProcess();
    const qva = await q.mmapFile((obj as VnodeObject).path);
    const loaning = uvmLoan(p.map, va, 2 * P, 'kernel');
    const qread = hookOnce(
      k,
      (ev) => ev.kind === 'vnode-read' && ev.offset === 2,
      () => {
        obj.truncate(2);
      },
    );
    await expectKernelError(q.read(qva + 2 * P, 1), 'EFAULT');
    const pages = await loaning;
    expect(qread.fired()).toBe(1);
    k.checkInvariants();
    expect(Buffer.concat(pages.map((pg) => pg.bytes()))).toEqual(data.subarray(0, 2 * P));
    uvmUnloanPages(pages);
    await expectAllFree(k);
  });

  it('the mapping being loaned is unmapped during the read: EFAULT, the file page freed later', async () => {
    const k = new Kernel({ physPages: 128 });
    const { p, va } = await fileRegion(k, 2);
    hookOnce(
      k,
      (ev) => ev.kind === 'vnode-read',
      () => p.munmap(va, 2 * P),
    );
    await expectKernelError(uvmLoan(p.map, va, 2 * P, 'anon'), 'EFAULT');
    k.checkInvariants();
    await k.idle();
    expect(k.stats().anons).toBe(0);
    await expectAllFree(k);
  });

  it('the amap slot is filled during the read (a write to the page): the loan takes the anon page', async () => {
    const k = new Kernel({ physPages: 128 });
    const { p, va, data } = await fileRegion(k, 1, { prot: Prot.READ | Prot.WRITE });
    let loaning: Promise<VmPage[]> | null = null;
    /*
     * The writer's fault reads the file page; in the middle of that read the loan starts, finds the
     * page BUSY and sleeps in pgo_get. The writer promotes the page into a new anon (the amap slot
     * fills, the map version doesn't move); the loan wakes, sees the slot filled, looks up again and
     * loans the anon's page -- before the writer's bytes land, so the write then breaks the loan.
     */
    hookOnce(
      k,
      (ev) => ev.kind === 'vnode-read',
      async () => {
        loaning = uvmLoan(p.map, va, P, 'kernel');
        await tick();
      },
    );
    await p.write(va, fill(0xab, 16));
    const pages = await loaning!;
    k.checkInvariants();
    const pg = pages[0];
    expect(pg).not.toBe(objectPage(p, va));
    expect(pg.uobject).toBeNull();
    const s = k.stats();
    expect([s.loansAnon, s.loansObj, s.pageins, s.cowFaults, s.loanBreaks]).toEqual([1, 0, 1, 1, 1]);
    /* the loan has the bytes the anon had when it was loaned: the file's, a copy of them */
    expect(pg.bytes()).toEqual(data);
    expect(objectPage(p, va)!.bytes()).toEqual(data);
    /* the writer's bytes went to the anon's new page; the loaned page is an orphan now */
    expect(anonAt(p, va)!.page).not.toBe(pg);
    expect(await p.read(va, 16)).toEqual(fill(0xab, 16));
    expect(pg.uanon).toBeNull();
    expect(s.orphanPages).toBe(1);
    await p.write(va, fill(0xcd, 16));
    expect(pg.bytes()).toEqual(data);
    uvmUnloanPages(pages);
    expect(k.stats().orphansFreed).toBe(1);
    await expectAllFree(k);
  });
});

describe('7. loan breaking: a user write copies; the loaned bytes never change', () => {
  it('upper layer: a write to a loaned anon page goes to a copy; the loan keeps the old page', async () => {
    const k = new Kernel({ physPages: 128 });
    const { p, va, data } = await anonRegion(k, 1, 1);
    const anon = anonAt(p, va)!;
    const [pg] = await uvmLoan(p.map, va, P, 'kernel');
    expect(pg).toBe(anon.page);
    await p.write(va + 100, fill(0xee, 50));
    k.checkInvariants();
    expect(pg.bytes()).toEqual(data);
    expect(anonAt(p, va)).toBe(anon);
    expect(anon.page).not.toBe(pg);
    const mine = await p.read(va, P);
    expect(mine.subarray(100, 150)).toEqual(fill(0xee, 50));
    expect(mine.subarray(0, 100)).toEqual(data.subarray(0, 100));
    expect(k.stats().loanBreaks).toBe(1);
    expect(pg.uanon).toBeNull();
    expect(k.stats().orphanPages).toBe(1);
    uvmUnloanPages([pg]);
    expect(k.stats().orphansFreed).toBe(1);
    await expectAllFree(k);
  });

  it('lower layer: a write through a shared file mapping; the file gets the new bytes after sync, the loan the old', async () => {
    const k = new Kernel({ physPages: 128 });
    const { p, va, data, file } = await fileRegion(k, 2, { shared: true, prot: Prot.READ | Prot.WRITE });
    const pages = await uvmLoan(p.map, va, 2 * P, 'kernel');
    const obj = entryAt(p, va).object!;
    await p.write(va + P - 4, fill(0x21, 8));
    k.checkInvariants();
    expect(Buffer.concat(pages.map((pg) => pg.bytes()))).toEqual(data);
    expect(obj.pages[0]).not.toBe(pages[0]);
    expect(obj.pages[1]).not.toBe(pages[1]);
    expect(k.stats().loanBreaks).toBe(2);
    await k.sync();
    const disk = await fs.readFile(file);
    const want = Buffer.from(data);
    want.fill(0x21, P - 4, P + 4);
    expect(disk).toEqual(want);
    expect(Buffer.concat(pages.map((pg) => pg.bytes()))).toEqual(data);
    uvmUnloanPages(pages);
    expect(k.stats().orphansFreed).toBe(2);
    await expectAllFree(k);
  });

  it('a private file mapping: a write promotes to an anon (COW), no loan break; the object page stays on loan', async () => {
    const k = new Kernel({ physPages: 128 });
    const { p, va, data, file } = await fileRegion(k, 1, { prot: Prot.READ | Prot.WRITE });
    const [pg] = await uvmLoan(p.map, va, P, 'kernel');
    await p.write(va, fill(0x33, 8));
    k.checkInvariants();
    expect(k.stats().loanBreaks).toBe(0);
    expect(k.stats().cowFaults).toBe(1);
    expect(pg).toBe(objectPage(p, va));
    expect(pg.bytes()).toEqual(data);
    await k.sync();
    expect(await fs.readFile(file)).toEqual(data);
    uvmUnloanPages([pg]);
    await expectAllFree(k);
  });

  it('O->A: a write through the shared mapping leaves the anon the old bytes', async () => {
    const k = new Kernel({ physPages: 128 });
    const { p, va, data } = await fileRegion(k, 1, { shared: true, prot: Prot.READ | Prot.WRITE });
    const [anon] = await uvmLoan(p.map, va, P, 'anon');
    const pg = anon.page!;
    await p.write(va, fill(0x44, 4));
    k.checkInvariants();
    expect(anon.page).toBe(pg);
    expect(pg.bytes()).toEqual(data);
    expect(pg.uobject).toBeNull();
    expect(objectPage(p, va)!.bytes().subarray(0, 4)).toEqual(fill(0x44, 4));
    expect(k.stats().loanBreaks).toBe(1);
    uvmUnloanAnons([anon]);
    await expectAllFree(k);
  });

  it('a loaned page written again and again by its owner: the loan never sees a byte change', async () => {
    const k = new Kernel({ physPages: 128 });
    const { p, va, data } = await anonRegion(k, 2, 2);
    const loans = [await uvmLoan(p.map, va, 2 * P, 'kernel')];
    for (let i = 0; i < 5; i++) {
      await p.write(va + i * 500, fill(i, 1000));
      loans.push(await uvmLoan(p.map, va, 2 * P, 'kernel'));
      k.checkInvariants();
    }
    expect(Buffer.concat(loans[0].map((pg) => pg.bytes()))).toEqual(data);
    const last = await p.read(va, 2 * P);
    expect(Buffer.concat(loans[5].map((pg) => pg.bytes()))).toEqual(last);
    for (const l of loans) uvmUnloanPages(l);
    await expectAllFree(k);
  });
});

describe('8. owners that free loaned pages: orphans, and anons that adopt them', () => {
  it('munmap: the loaned anon page becomes an orphan, kept for the loan, freed by the unloan', async () => {
    const k = new Kernel({ physPages: 128 });
    const { p, va, data } = await anonRegion(k, 2, 2);
    const pages = await uvmLoan(p.map, va, 2 * P, 'kernel');
    p.munmap(va, 2 * P);
    k.checkInvariants();
    expect(k.stats().orphanPages).toBe(2);
    for (const pg of pages) {
      expect([pg.uobject, pg.uanon, pg.loanCount]).toEqual([null, null, 1]);
      expect(pg.queue).toBe(PQ_NONE);
    }
    expect(Buffer.concat(pages.map((pg) => pg.bytes()))).toEqual(data);
    uvmUnloanPages([pages[0]]);
    expect(k.stats().orphansFreed).toBe(1);
    expect(pages[0].queue).toBe(PQ_FREE);
    uvmUnloanPages([pages[1]]);
    expect(k.stats().orphansFreed).toBe(2);
    await expectAllFree(k);
  });

  it('exit: every loaned page of the process becomes an orphan', async () => {
    const k = new Kernel({ physPages: 128 });
    const { p, va, data } = await anonRegion(k, 3, 3);
    const pages = await uvmLoan(p.map, va, 3 * P, 'kernel');
    const anons = await uvmLoan(p.map, va, P, 'anon');
    p.exit();
    k.checkInvariants();
    /* the page the A->A loan keeps alive is still its anon's; the other two are orphans */
    expect(k.stats().orphanPages).toBe(2);
    expect(anons[0].ref).toBe(1);
    expect(anons[0].page).toBe(pages[0]);
    expect(pages[0].anonOwns).toBe(true);
    expect(pages.slice(1).map((pg) => pg.uanon)).toEqual([null, null]);
    expect(Buffer.concat(pages.map((pg) => pg.bytes()))).toEqual(data);
    uvmUnloanAnons(anons);
    expect(k.stats().orphanPages).toBe(3);
    uvmUnloanPages(pages);
    expect(k.stats().orphansFreed).toBe(3);
    await expectAllFree(k);
  });

  it('object truncate: a loaned file page becomes an orphan; its bytes stay', async () => {
    const k = new Kernel({ physPages: 128 });
    const { p, va, data } = await fileRegion(k, 2);
    const pages = await uvmLoan(p.map, va, 2 * P, 'kernel');
    const obj = entryAt(p, va).object!;
    obj.truncate(1);
    k.checkInvariants();
    expect(pages[1].uobject).toBeNull();
    expect(pages[0].uobject).toBe(obj);
    expect(k.stats().orphanPages).toBe(1);
    expect(pages[1].bytes()).toEqual(data.subarray(P));
    uvmUnloanPages(pages);
    expect(k.stats().orphansFreed).toBe(1);
    await expectAllFree(k);
  });

  it('the last mapping of a file goes away: its loaned pages outlive the vnode', async () => {
    const k = new Kernel({ physPages: 128 });
    const { p, va, data } = await fileRegion(k, 2);
    const pages = await uvmLoan(p.map, va, 2 * P, 'kernel');
    p.munmap(va, 2 * P);
    await k.idle();
    k.checkInvariants();
    expect(k.stats().orphanPages).toBe(2);
    expect(Buffer.concat(pages.map((pg) => pg.bytes()))).toEqual(data);
    uvmUnloanPages(pages);
    await expectAllFree(k);
  });

  it('O->A, then the object lets go: the anon adopts the page when the kernel loan ends', async () => {
    const k = new Kernel({ physPages: 128 });
    const { p, va, data } = await fileRegion(k, 1);
    const [anon] = await uvmLoan(p.map, va, P, 'anon');
    const [pg] = await uvmLoan(p.map, va, P, 'kernel');
    expect(pg).toBe(anon.page);
    entryAt(p, va).object!.truncate(0);
    k.checkInvariants();
    expect([pg.uobject, pg.uanon, pg.anonOwns, pg.loanCount]).toEqual([null, anon, false, 2]);
    expect(k.stats().orphanPages).toBe(1);
    uvmUnloanPages([pg]);
    k.checkInvariants();
    expect([pg.uanon, pg.anonOwns, pg.loanCount, pg.wireCount]).toEqual([anon, true, 0, 0]);
    expect(k.stats().orphanPages).toBe(0);
    expect(pg.bytes()).toEqual(data);
    uvmUnloanAnons([anon]);
    await expectAllFree(k);
  });

  it('O->A, then the object lets go: an A->K loan of the anon adopts it', async () => {
    const k = new Kernel({ physPages: 128 });
    const { p, va } = await fileRegion(k, 1);
    const [anon] = await uvmLoan(p.map, va, P, 'anon');
    const pg = anon.page!;
    p.munmap(va, P);
    await k.idle();
    expect([pg.uobject, pg.anonOwns, pg.loanCount]).toEqual([null, false, 1]);
    /* map the anon into a process, as a receive that hands the pages over would */
    const q = k.createProcess();
    const qva = q.mmap(P);
    const e = entryAt(q, qva);
    e.amap = amapAlloc(k.uvm, 1);
    e.needsCopy = false;
    amapAdd(e.amap, 0, anon, false);
    anon.ref++;
    const pages = await uvmLoan(q.map, qva, P, 'kernel');
    k.checkInvariants();
    expect(pages[0]).toBe(pg);
    expect([pg.anonOwns, pg.loanCount, pg.wireCount]).toEqual([true, 1, 1]);
    uvmUnloanPages(pages);
    uvmUnloanAnons([anon]);
    await expectAllFree(k);
  });

  it('an A->K loan of a page an anon borrows from its object counts under loansOA, as NetBSD counts loan_oa', async () => {
    const k = new Kernel({ physPages: 128 });
    const { p, va } = await fileRegion(k, 1);
    const [anon] = await uvmLoan(p.map, va, P, 'anon');
    const q = k.createProcess();
    const qva = q.mmap(P);
    const e = entryAt(q, qva);
    e.amap = amapAlloc(k.uvm, 1);
    e.needsCopy = false;
    amapAdd(e.amap, 0, anon, false);
    anon.ref++;
    const before = k.stats();
    const pages = await uvmLoan(q.map, qva, P, 'kernel');
    const after = k.stats();
    expect(pages[0].uobject).toBe(entryAt(p, va).object);
    expect([after.loansOA - before.loansOA, after.loansAnon - before.loansAnon]).toEqual([1, 0]);
    uvmUnloanPages(pages);
    uvmUnloanAnons([anon]);
    await expectAllFree(k);
  });

  it('an O->A page the object let go of is freed by the last anon unloan', async () => {
    const k = new Kernel({ physPages: 128 });
    const { p, va } = await fileRegion(k, 1);
    const anons = await uvmLoan(p.map, va, P, 'anon');
    p.exit();
    await k.idle();
    k.checkInvariants();
    expect(k.stats().orphanPages).toBe(1);
    uvmUnloanAnons(anons);
    await expectAllFree(k);
  });
});

describe('9. the pagedaemon takes a clean inactive O->A page from its object', () => {
  it('under memory pressure: the anon keeps the page, the object loses it (loanBreaks++)', async () => {
    const k = new Kernel({ physPages: 40, swapPages: 256 });
    const { p, va, data } = await fileRegion(k, 1);
    const obj = entryAt(p, va).object!;
    const [anon] = await uvmLoan(p.map, va, P, 'anon');
    const pg = anon.page!;
    uvmPageDeactivate(pg);
    expect(pg.queue).toBe(PQ_INACTIVE);
    const h = await hog(k, 80);
    await k.idle();
    k.checkInvariants();
    expect(k.stats().loanBreaks).toBeGreaterThanOrEqual(1);
    expect(obj.pages[0]).not.toBe(pg);
    /* the anon owns its page now; under pressure it may even be on swap */
    if (anon.page !== null) {
      expect(anon.page.anonOwns).toBe(true);
      expect(anon.page.uobject).toBeNull();
      expect(anon.page.loanCount).toBe(0);
      expect(anon.page.bytes()).toEqual(data);
    } else {
      expect(anon.swslot).not.toBe(0);
    }
    /* the file page comes back from the file when needed */
    expect(await p.read(va, P)).toEqual(data);
    h.exit();
    uvmUnloanAnons([anon]);
    await expectAllFree(k);
  });

  it('k.pagedaemon.run() below the free target: the first inactive page, if O->A and clean, is handed to the anon', async () => {
    const k = new Kernel({ physPages: 64, swapPages: 256 });
    const { p, va, data } = await fileRegion(k, 2);
    const obj = entryAt(p, va).object!;
    const [anon] = await uvmLoan(p.map, va, P, 'anon');
    const pg = anon.page!;
    /* use memory until just below the free target, without waking the pagedaemon into a pass */
    const h = k.createProcess();
    const hv = h.mmap(64 * P);
    let i = 0;
    while (k.uvm.free.length >= k.uvm.freeTarget) await h.write(hv + i++ * P, fill(1, 1));
    await k.idle();
    while (k.uvm.inactive.head !== null) uvmPageActivate(k.uvm.inactive.head);
    uvmPageDeactivate(pg);
    expect(k.uvm.inactive.head).toBe(pg);
    const breaks = k.stats().loanBreaks;
    await k.pagedaemon.run();
    k.checkInvariants();
    expect(k.stats().loanBreaks).toBe(breaks + 1);
    expect(obj.pages[0]).toBeUndefined();
    expect(pg.uobject).toBeNull();
    expect(anon.page === pg || anon.page === null).toBe(true);
    if (anon.page === pg) {
      expect([pg.anonOwns, pg.loanCount]).toEqual([true, 0]);
      expect(pg.bytes()).toEqual(data.subarray(0, P));
    }
    uvmUnloanAnons([anon]);
    await expectAllFree(k);
  });

  it('a dirty O->A page is written back to its file first, then taken from its object for the anon', async () => {
    const k = new Kernel({ physPages: 40, swapPages: 256 });
    const { p, va, file } = await fileRegion(k, 1, { shared: true, prot: Prot.READ | Prot.WRITE });
    await p.write(va, fill(0x7e, 8));
    const obj = entryAt(p, va).object!;
    const [anon] = await uvmLoan(p.map, va, P, 'anon');
    const pg = anon.page!;
    const lent = Buffer.from(pg.bytes());
    uvmPageDeactivate(pg);
    const h = await hog(k, 80);
    await k.idle();
    k.checkInvariants();
    /* the pager wrote the page to the file before the object let go of it */
    expect((await fs.readFile(file)).subarray(0, 8)).toEqual(fill(0x7e, 8));
    expect(obj.pages[0]).not.toBe(pg);
    expect(k.stats().loanBreaks).toBeGreaterThanOrEqual(1);
    if (anon.page !== null) {
      expect([anon.page.anonOwns, anon.page.uobject, anon.page.loanCount]).toEqual([true, null, 0]);
      expect(anon.page.bytes()).toEqual(lent);
    } else {
      expect(anon.swslot).not.toBe(0);
    }
    expect((await p.read(va, 8)).equals(fill(0x7e, 8))).toBe(true);
    h.exit();
    uvmUnloanAnons([anon]);
    await expectAllFree(k);
  });
});

describe('10. misuse: unloaning what is not loaned, kernel writes, bad arguments', () => {
  it('unloaning a page that is not loaned (or twice, or loaned only to an anon) panics', async () => {
    const k = new Kernel({ physPages: 64 });
    const { p, va } = await anonRegion(k, 1, 1);
    const pg = anonAt(p, va)!.page!;
    expect(() => uvmUnloanPages([pg])).toThrow(KernelPanic);
    expect(() => uvmUnloanPages([pg])).toThrow(/isn't loaned/);
    const pages = await uvmLoan(p.map, va, P, 'kernel');
    uvmUnloanPages(pages);
    expect(() => uvmUnloanPages(pages)).toThrow(KernelPanic);
    const { p: fp, va: fva } = await fileRegion(k, 1);
    const anons = await uvmLoan(fp.map, fva, P, 'anon');
    expect(() => uvmUnloanPages([anons[0].page!])).toThrow(KernelPanic);
    uvmUnloanAnons(anons);
    expect(() => uvmUnloanAnons(anons)).toThrow(KernelPanic);
    await expectAllFree(k);
  });

  it('unloan of something not a list of pages or anons is EINVAL (a promise: a forgotten await?)', async () => {
    const k = new Kernel({ physPages: 64 });
    const { p, va } = await anonRegion(k, 1, 1);
    const pending = uvmLoan(p.map, va, P, 'kernel');
    for (const bad of [null, undefined, 3, {}, 'pages', [{}], [null], [3]]) {
      expectErrorSync(() => uvmUnloanPages(bad as never), 'EINVAL');
      expectErrorSync(() => uvmUnloanAnons(bad as never), 'EINVAL');
    }
    const err = expectErrorSync(() => uvmUnloanPages(pending as never), 'EINVAL');
    expect(err.message).toMatch(/forgotten await/);
    expectErrorSync(() => uvmUnloanPages([pending] as never), 'EINVAL');
    /* nothing was unloaned: the loan is still there, until it is ended properly */
    const pages = await pending;
    expect(pages[0].loanCount).toBe(1);
    uvmUnloanPages(pages);
    await expectAllFree(k);
  });

  it('an unloan that lists a page more times than it is loaned panics before it unloans anything', async () => {
    const k = new Kernel({ physPages: 64 });
    const { p, va } = await anonRegion(k, 2, 2);
    const [a, b] = await uvmLoan(p.map, va, 2 * P, 'kernel');
    expect(() => uvmUnloanPages([a, b, a])).toThrow(KernelPanic);
    expect([a.loanCount, a.wireCount, b.loanCount, b.wireCount]).toEqual([1, 1, 1, 1]);
    k.checkInvariants();
    const anons = await uvmLoan(p.map, va, 2 * P, 'anon');
    const refs = anons.map((x) => x.ref);
    expect(() => uvmUnloanAnons([anons[0], anons[1], anons[1], anons[1]])).toThrow(KernelPanic);
    expect(anons.map((x) => x.ref)).toEqual(refs);
    /* the marks the check used are all cleared: a right call still works */
    uvmUnloanPages([a, b]);
    uvmUnloanAnons(anons);
    await expectAllFree(k);
  });

  it('a kernel write to a loaned page mapped into kernel space panics; a kernel read sees the bytes', async () => {
    const k = new Kernel({ physPages: 64 });
    const { p, va, data } = await anonRegion(k, 2, 2);
    const pages = await uvmLoan(p.map, va, 2 * P, 'kernel');
    const kva = k.kva.alloc(2);
    k.kenter(kva, pages, Prot.READ);
    expect(k.kread(kva + 10, P)).toEqual(data.subarray(10, P + 10));
    expect(() => k.kwrite(kva + P + 5, fill(1, 1))).toThrow(KernelPanic);
    expect(() => k.kwrite(kva, fill(1, 1))).toThrow(/read-only/);
    expect(Buffer.concat(pages.map((pg) => pg.bytes()))).toEqual(data);
    k.kremove(kva, 2);
    k.kva.free(kva, 2);
    uvmUnloanPages(pages);
    await expectAllFree(k);
  });

  it('bad arguments: EINVAL and nothing loaned', async () => {
    const k = new Kernel({ physPages: 64 });
    const { p, va } = await anonRegion(k, 4, 4);
    const bad: [number, number, unknown][] = [
      [va + 1, P, 'kernel'],
      [va + 2048, P, 'anon'],
      [va, P + 1, 'kernel'],
      [va, 100, 'anon'],
      [va, 0, 'kernel'],
      [va, -P, 'kernel'],
      [va, Number.NaN, 'kernel'],
      [Number.NaN, P, 'anon'],
      [va, Number.POSITIVE_INFINITY, 'kernel'],
      [-P, P, 'kernel'],
      [va, 1.5 * P, 'kernel'],
      [VM_MAX_ADDRESS - P, 2 * P, 'kernel'],
      [va, P, 'Kernel'],
      [va, P, 'KERNEL'],
      [va, P, 'anons'],
      [va, P, ''],
      [va, P, undefined],
      [va, P, 'kernel|anon'],
      [va, P, ['kernel']],
    ];
    for (const [start, len, to] of bad) {
      await expectKernelError(uvmLoan(p.map, start, len, to as 'kernel'), 'EINVAL');
    }
    await expectKernelError(uvmLoan({} as VmMap, va, P, 'kernel'), 'EINVAL');
    k.checkInvariants();
    const s = k.stats();
    expect([s.loans, s.unloans, s.loanedPages, s.wiredPages]).toEqual([0, 0, 0, 0]);
    expect(k.uvm.mmu.maxProt(anonAt(p, va)!.page!.frame)).toBe(Prot.READ | Prot.WRITE);
    expect(p.map).toBeInstanceOf(VmMap);
    await expectAllFree(k);
  });

  it('a map torn down by exit: EFAULT', async () => {
    const k = new Kernel({ physPages: 64 });
    const { p, va } = await anonRegion(k, 1, 1);
    p.exit();
    await expectKernelError(uvmLoan(p.map, va, P, 'kernel'), 'EFAULT');
    await expectAllFree(k);
  });
});

describe('11. counters', () => {
  it('loans by kind, unloans, loan breaks and orphans freed have exact values', async () => {
    const k = new Kernel({ physPages: 128 });
    const { p, va } = await anonRegion(k, 2, 1);
    const fva = await p.mmapFile(await tmp.file('count', pattern(2, P)));
    expect(fva).toBe(va + 2 * P);
    const s0 = k.stats();
    expect([s0.loans, s0.unloans, s0.loanBreaks, s0.orphansFreed]).toEqual([0, 0, 0, 0]);

    const pages = await uvmLoan(p.map, va, 3 * P, 'kernel');
    let s = k.stats();
    expect([s.loansAnon, s.loansZero, s.loansObj, s.loansOA, s.loans]).toEqual([1, 1, 1, 0, 3]);
    expect([s.loanedPages, s.wiredPages]).toEqual([3, 3]);

    const anons = await uvmLoan(p.map, va, 3 * P, 'anon');
    s = k.stats();
    expect([s.loansAnon, s.loansZero, s.loansObj, s.loansOA, s.loans]).toEqual([2, 2, 1, 1, 6]);

    await p.write(va, fill(0, 1));
    s = k.stats();
    /* the anon is shared with the A->A loan: copy-on-write, not a loan break */
    expect([s.loanBreaks, s.cowFaults]).toEqual([0, 1]);

    /* the old anon's last reference was the A->A loan: its A->K-loaned page is orphaned */
    uvmUnloanAnons(anons);
    s = k.stats();
    expect([s.unloans, s.orphanPages]).toEqual([3, 1]);
    /* now the process's new anon page is private: loan it, write again: a loan break */
    const again = await uvmLoan(p.map, va, P, 'kernel');
    await p.write(va, fill(1, 1));
    s = k.stats();
    expect([s.loanBreaks, s.loansAnon, s.orphanPages]).toEqual([1, 3, 2]);

    uvmUnloanPages(again);
    uvmUnloanPages(pages);
    s = k.stats();
    expect([s.unloans, s.orphansFreed, s.loanedPages, s.wiredPages]).toEqual([7, 2, 0, 0]);
    k.checkInvariants();
    await expectAllFree(k);
  });

  it('a failed loan counts the loans it took and the unloans that dropped them', async () => {
    const k = new Kernel({ physPages: 64 });
    const { p, va } = await anonRegion(k, 3, 2);
    p.munmap(va + 2 * P, P);
    await expectKernelError(uvmLoan(p.map, va, 3 * P, 'kernel'), 'EFAULT');
    const s = k.stats();
    expect([s.loansAnon, s.unloans, s.loanedPages]).toEqual([2, 2, 0]);
    await expectAllFree(k);
  });
});
