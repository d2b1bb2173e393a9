/*
 * loan-orphans-and-adoption.test.ts: owners that let go of pages still on loan.
 *
 * An owner that frees a loaned page -- munmap, exit, an object truncated or torn down -- only disowns
 * it: the page becomes an orphan that lives for its borrowers, keeps its bytes, is never handed out
 * again while on loan, and is freed by the last unloan (orphansFreed). A page an object had loaned to
 * an anon (O->A) is adopted by that anon once the object lets go: anonOwns set, the O->A loan gone.
 */
import fs from 'node:fs/promises';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Kernel, PAGE_SIZE, Prot, uvmLoan, uvmUnloanAnons, uvmUnloanPages } from '../src/index.js';
import { amapAdd, amapAlloc } from '../src/uvm_amap.js';
import { PQ_FREE, PQ_NONE } from '../src/uvm_page.js';
import {
  anonAt,
  bytesOf,
  entryAt,
  expectAllFree,
  fill,
  hog,
  makeTmpDir,
  objectPage,
  pattern,
  type TmpDir,
} from './loan-helpers.js';

const P = PAGE_SIZE;

let tmp: TmpDir;
beforeEach(async () => {
  tmp = await makeTmpDir();
});
afterEach(async () => {
  await tmp.remove();
});

describe('orphans', () => {
  it('orphans keep their bytes and their frames through heavy memory pressure, then the unloan frees them', async () => {
    const k = new Kernel({ physPages: 48, swapPages: 512 });
    const p = k.createProcess();
    const va = p.mmap(4 * P);
    const data = pattern(31, 4 * P);
    await p.write(va, data);
    const pages = await uvmLoan(p.map, va, 4 * P, 'kernel');
    p.munmap(va, 4 * P);
    expect(k.stats().orphanPages).toBe(4);
    const frames = pages.map((pg) => pg.frame);
    const h = await hog(k, 100, 0x99);
    await k.idle();
    k.checkInvariants();
    expect(bytesOf(pages)).toEqual(data);
    expect(pages.map((pg) => pg.frame)).toEqual(frames);
    for (const pg of pages) expect([pg.queue, pg.loanCount, pg.wireCount]).toEqual([PQ_NONE, 1, 1]);
    h.exit();
    uvmUnloanPages(pages);
    expect(k.stats().orphansFreed).toBe(4);
    for (const pg of pages) expect(pg.queue).toBe(PQ_FREE);
    await expectAllFree(k);
  });

  it('an orphan loaned twice lives until both loans end', async () => {
    const k = new Kernel({ physPages: 64 });
    const p = k.createProcess();
    const va = p.mmap(P);
    await p.write(va, fill(0x10));
    const a = await uvmLoan(p.map, va, P, 'kernel');
    const b = await uvmLoan(p.map, va, P, 'kernel');
    p.exit();
    k.checkInvariants();
    expect(a[0].loanCount).toBe(2);
    uvmUnloanPages(a);
    k.checkInvariants();
    expect(k.stats().orphansFreed).toBe(0);
    expect(a[0].bytes()).toEqual(fill(0x10));
    uvmUnloanPages(b);
    expect(k.stats().orphansFreed).toBe(1);
    await expectAllFree(k);
  });

  it('fork: the page stays owned while the child still maps it, and is orphaned when the last owner exits', async () => {
    const k = new Kernel({ physPages: 64 });
    const parent = k.createProcess();
    const va = parent.mmap(2 * P);
    const data = pattern(32, 2 * P);
    await parent.write(va, data);
    const pages = await uvmLoan(parent.map, va, 2 * P, 'kernel');
    const child = parent.fork();
    parent.exit();
    k.checkInvariants();
    expect(k.stats().orphanPages).toBe(0);
    expect(pages.map((pg) => pg.anonOwns)).toEqual([true, true]);
    expect(await child.read(va, 2 * P)).toEqual(data);
    await child.write(va + P, fill(0x20, 4));
    k.checkInvariants();
    /* the child's write broke the loan of page 1: that page is an orphan now */
    expect(pages[1].uanon).toBeNull();
    expect(k.stats().orphanPages).toBe(1);
    child.exit();
    k.checkInvariants();
    expect(k.stats().orphanPages).toBe(2);
    expect(bytesOf(pages)).toEqual(data);
    uvmUnloanPages(pages);
    expect(k.stats().orphansFreed).toBe(2);
    await expectAllFree(k);
  });

  it('a file torn down while its dirty pages are on loan: the file gets the bytes, the loan keeps the page', async () => {
    const k = new Kernel({ physPages: 64 });
    const data = pattern(33, 3 * P);
    const file = await tmp.file('dirty-teardown', data);
    const p = k.createProcess();
    const va = await p.mmapFile(file, { shared: true, prot: Prot.READ | Prot.WRITE });
    await p.write(va + P, fill(0x55, P));
    const pages = await uvmLoan(p.map, va, 3 * P, 'kernel');
    const anons = await uvmLoan(p.map, va, 3 * P, 'anon');
    p.exit();
    await k.idle();
    k.checkInvariants();
    const want = Buffer.from(data);
    want.fill(0x55, P, 2 * P);
    expect(await fs.readFile(file)).toEqual(want);
    expect(bytesOf(pages)).toEqual(want);
    expect(pages.map((pg) => pg.uobject)).toEqual([null, null, null]);
    /* each page is borrowed by an anon (O->A) too: the object let go, so they are adoptable orphans */
    expect(pages.map((pg) => pg.uanon)).toEqual(anons);
    expect(k.stats().orphanPages).toBe(3);
    uvmUnloanPages(pages);
    k.checkInvariants();
    expect(pages.map((pg) => pg.anonOwns)).toEqual([true, true, true]);
    expect(k.stats().orphanPages).toBe(0);
    expect(k.stats().orphansFreed).toBe(0);
    uvmUnloanAnons(anons);
    await expectAllFree(k);
    expect(await fs.readFile(file)).toEqual(want);
  });

  it('truncating an object frees the pages past the end that are not loaned and orphans those that are', async () => {
    const k = new Kernel({ physPages: 64 });
    const data = pattern(34, 4 * P);
    const p = k.createProcess();
    const va = await p.mmapFile(await tmp.file('trunc', data));
    expect(await p.read(va, 4 * P)).toEqual(data);
    const loaned = await uvmLoan(p.map, va + 2 * P, P, 'kernel');
    const obj = entryAt(p, va).object!;
    const free0 = k.stats().freePages;
    obj.truncate(1);
    k.checkInvariants();
    expect(k.stats().freePages).toBe(free0 + 2);
    expect(obj.resident).toBe(1);
    expect(loaned[0].uobject).toBeNull();
    expect(loaned[0].bytes()).toEqual(data.subarray(2 * P, 3 * P));
    expect(k.stats().orphanPages).toBe(1);
    uvmUnloanPages(loaned);
    expect(k.stats().freePages).toBe(free0 + 3);
    await expectAllFree(k);
  });

  it('a loan break of an anon page makes an orphan; unmapping afterwards frees the new page, not the orphan', async () => {
    const k = new Kernel({ physPages: 64 });
    const p = k.createProcess();
    const va = p.mmap(P);
    await p.write(va, fill(0x01));
    const [pg] = await uvmLoan(p.map, va, P, 'kernel');
    await p.write(va, fill(0x02));
    const fresh = anonAt(p, va)!.page!;
    expect(fresh).not.toBe(pg);
    p.munmap(va, P);
    k.checkInvariants();
    expect(fresh.queue).toBe(PQ_FREE);
    expect(pg.queue).toBe(PQ_NONE);
    expect(pg.bytes()).toEqual(fill(0x01));
    uvmUnloanPages([pg]);
    await expectAllFree(k);
  });
});

describe('adoption: the anon that borrowed a page becomes its owner', () => {
  it('O->A and O->K, then the vnode is torn down: the kernel unloan lets the anon adopt the page', async () => {
    const k = new Kernel({ physPages: 64 });
    const data = pattern(35, P);
    const p = k.createProcess();
    const va = await p.mmapFile(await tmp.file('adopt', data));
    const [anon] = await uvmLoan(p.map, va, P, 'anon');
    const [pg] = await uvmLoan(p.map, va, P, 'kernel');
    p.munmap(va, P);
    await k.idle();
    k.checkInvariants();
    expect([pg.uobject, pg.uanon, pg.anonOwns, pg.loanCount, pg.wireCount]).toEqual([
      null,
      anon,
      false,
      2,
      1,
    ]);
    uvmUnloanPages([pg]);
    k.checkInvariants();
    expect([pg.uanon, pg.anonOwns, pg.loanCount, pg.wireCount]).toEqual([anon, true, 0, 0]);
    expect(anon.page).toBe(pg);
    expect(pg.bytes()).toEqual(data);
    expect(k.stats().orphansFreed).toBe(0);
    uvmUnloanAnons([anon]);
    expect(pg.queue).toBe(PQ_FREE);
    await expectAllFree(k);
  });

  it('the pagedaemon adopts an O->A orphan for its anon and pages it out to swap', async () => {
    const k = new Kernel({ physPages: 40, swapPages: 256 });
    const p = k.createProcess();
    const va = await p.mmapFile(await tmp.file('adopt-pd', pattern(36, 2 * P)));
    const anons = await uvmLoan(p.map, va, 2 * P, 'anon');
    const pages = anons.map((a) => a.page!);
    p.exit();
    await k.idle();
    expect(k.stats().orphanPages).toBe(2);
    const h = await hog(k, 90);
    await k.idle();
    k.checkInvariants();
    expect(k.stats().orphanPages).toBe(0);
    for (const a of anons) {
      if (a.page !== null) expect([a.page.anonOwns, a.page.loanCount]).toEqual([true, 0]);
      else expect(a.swslot).not.toBe(0);
    }
    expect(anons.some((a) => a.page === null)).toBe(true);
    for (const pg of pages) expect(pg.isOrphan() && pg.loanCount > 0).toBe(false);
    h.exit();
    const swapUsed = k.stats().swapUsed;
    expect(swapUsed).toBeGreaterThan(0);
    uvmUnloanAnons(anons);
    await expectAllFree(k);
    expect(k.stats().swapUsed).toBe(0);
  });

  it('the A->K loan of an anon holding an adoptable page adopts it (uvmfault_anonget)', async () => {
    const k = new Kernel({ physPages: 64 });
    const data = pattern(37, P);
    const p = k.createProcess();
    const va = await p.mmapFile(await tmp.file('adopt-ak', data), {
      shared: true,
      prot: Prot.READ | Prot.WRITE,
    });
    const [anon] = await uvmLoan(p.map, va, P, 'anon');
    const pg = anon.page!;
    /* a write through the shared mapping breaks the O->A loan: the object takes a new page */
    await p.write(va, fill(0x66, 4));
    expect(objectPage(p, va)).not.toBe(pg);
    expect([pg.uobject, pg.uanon, pg.anonOwns, pg.loanCount]).toEqual([null, anon, false, 1]);
    expect(k.stats().orphanPages).toBe(1);
    /* the borrowed anon lands in a process's amap, as pages handed over on receive would */
    const q = k.createProcess();
    const qva = q.mmap(P);
    const e = entryAt(q, qva);
    e.amap = amapAlloc(k.uvm, 1);
    e.needsCopy = false;
    amapAdd(e.amap, 0, anon, false);
    anon.ref++;
    expect(await q.read(qva, P)).toEqual(data);
    k.checkInvariants();
    expect([pg.anonOwns, pg.loanCount]).toEqual([true, 0]);
    expect(k.stats().orphanPages).toBe(0);
    const [lent] = await uvmLoan(q.map, qva, P, 'kernel');
    expect(lent).toBe(pg);
    expect([pg.loanCount, pg.wireCount]).toEqual([1, 1]);
    k.checkInvariants();
    uvmUnloanPages([lent]);
    uvmUnloanAnons([anon]);
    await expectAllFree(k);
  });

  it('the last anon reference to an adoptable page frees it', async () => {
    const k = new Kernel({ physPages: 64 });
    const p = k.createProcess();
    const va = await p.mmapFile(await tmp.file('adopt-free', pattern(38, P)));
    const [a1] = await uvmLoan(p.map, va, P, 'anon');
    const [a2] = await uvmLoan(p.map, va, P, 'anon');
    expect(a2).toBe(a1);
    const pg = a1.page!;
    entryAt(p, va).object!.truncate(0);
    k.checkInvariants();
    uvmUnloanAnons([a1]);
    expect(pg.queue).not.toBe(PQ_FREE);
    uvmUnloanAnons([a2]);
    k.checkInvariants();
    expect(pg.queue).toBe(PQ_FREE);
    await expectAllFree(k);
  });
});
