/*
 * loan-write-after-loan-keeps-borrowed-bytes.test.ts: the promise page loanout makes to a borrower.
 *
 * Whatever the owner does after the loan -- write the buffer again, fork and let the child write,
 * write through a shared mapping of a file, get swapped out and back -- the bytes the borrower was
 * lent never change while the loan lasts; the owner sees its own writes; and a file written through a
 * shared mapping gets the new bytes while the loan keeps the old. This is what lets a socket hand user
 * pages to the network without copying them (DESIGN.md §3, §5).
 */
import fs from 'node:fs/promises';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  Kernel,
  PAGE_SIZE,
  Prot,
  uvmLoan,
  uvmUnloanAnons,
  uvmUnloanPages,
  type VmPage,
} from '../src/index.js';
import {
  anonAt,
  bytesOf,
  expectAllFree,
  fill,
  hog,
  makeTmpDir,
  objectPage,
  pattern,
  snapshot,
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

describe('a send-like loan: user buffer -> kernel mapping', () => {
  it('a buffer at an odd offset across 4 pages, mapped read-only in the kernel; the user rewrites it all', async () => {
    const k = new Kernel({ physPages: 128 });
    const p = k.createProcess();
    const base = p.mmap(5 * P);
    const off = 1234;
    const len = 3 * P + 999;
    const msg = pattern(41, len);
    await p.write(base + off, msg);
    /* whole pages are loaned; the "mbuf" covers just the bytes */
    const first = base;
    const npages = Math.ceil((off + len) / P);
    expect(npages).toBe(4);
    const pages = await uvmLoan(p.map, first, npages * P, 'kernel');
    const kva = k.kva.alloc(npages);
    k.kenter(kva, pages, Prot.READ);
    expect(k.kread(kva + off, len)).toEqual(msg);

    await p.write(base + off, fill(0xff, len));
    await p.write(base, fill(0xfe, 5 * P));
    k.checkInvariants();
    expect(k.kread(kva + off, len)).toEqual(msg);
    expect(await p.read(base, 5 * P)).toEqual(fill(0xfe, 5 * P));
    expect(k.stats().loanBreaks).toBe(4);

    k.kremove(kva, npages);
    k.kva.free(kva, npages);
    uvmUnloanPages(pages);
    await expectAllFree(k);
  });

  it('the same page loaned again after each write: every loan keeps its own version', async () => {
    const k = new Kernel({ physPages: 128 });
    const p = k.createProcess();
    const va = p.mmap(P);
    const loans: { pages: VmPage[]; want: Buffer }[] = [];
    for (let i = 0; i < 6; i++) {
      await p.write(va + i * 100, fill(0x30 + i, 300));
      const want = await p.read(va, P);
      loans.push({ pages: await uvmLoan(p.map, va, P, 'kernel'), want });
      k.checkInvariants();
      for (const l of loans) expect(l.pages[0].bytes()).toEqual(l.want);
    }
    expect(new Set(loans.map((l) => l.pages[0].frame)).size).toBe(6);
    expect(k.stats().orphanPages).toBe(5);
    for (const l of loans) uvmUnloanPages(l.pages);
    await expectAllFree(k);
  });
});

describe('fork', () => {
  it('parent and child both write a page loaned before the fork: the loan keeps the original', async () => {
    const k = new Kernel({ physPages: 128 });
    const parent = k.createProcess();
    const va = parent.mmap(2 * P);
    const data = pattern(42, 2 * P);
    await parent.write(va, data);
    const pages = await uvmLoan(parent.map, va, 2 * P, 'kernel');
    const child = parent.fork();
    await parent.write(va, fill(0xa1, 2 * P));
    k.checkInvariants();
    expect(await child.read(va, 2 * P)).toEqual(data);
    await child.write(va + 10, fill(0xc1, P));
    k.checkInvariants();
    expect(bytesOf(pages)).toEqual(data);
    expect(await parent.read(va, 2 * P)).toEqual(fill(0xa1, 2 * P));
    const mine = Buffer.from(data);
    mine.fill(0xc1, 10, 10 + P);
    expect(await child.read(va, 2 * P)).toEqual(mine);
    uvmUnloanPages(pages);
    await expectAllFree(k);
  });

  it('a page loaned after the fork, while parent and child share it copy-on-write', async () => {
    const k = new Kernel({ physPages: 128 });
    const parent = k.createProcess();
    const va = parent.mmap(P);
    await parent.write(va, fill(0x11));
    const child = parent.fork();
    const [pg] = await uvmLoan(child.map, va, P, 'kernel');
    expect(pg).toBe(anonAt(parent, va)!.page);
    await child.write(va, fill(0x22, 8));
    await parent.write(va + 8, fill(0x33, 8));
    k.checkInvariants();
    expect(pg.bytes()).toEqual(fill(0x11));
    expect((await child.read(va, 16)).subarray(0, 8)).toEqual(fill(0x22, 8));
    expect((await parent.read(va, 16)).subarray(8)).toEqual(fill(0x33, 8));
    uvmUnloanPages([pg]);
    await expectAllFree(k);
  });

  it('shared anonymous memory (an aobj) written by a forked child: both processes see it, the loan does not', async () => {
    const k = new Kernel({ physPages: 128 });
    const parent = k.createProcess();
    const va = parent.mmap(2 * P, { shared: true });
    await parent.write(va, fill(0x40, 2 * P));
    const child = parent.fork();
    const pages = await uvmLoan(parent.map, va, 2 * P, 'kernel');
    const anons = await uvmLoan(child.map, va, 2 * P, 'anon');
    await child.write(va + P - 2, fill(0x41, 4));
    k.checkInvariants();
    expect(bytesOf(pages)).toEqual(fill(0x40, 2 * P));
    expect(bytesOf(anons.map((a) => a.page!))).toEqual(fill(0x40, 2 * P));
    const want = fill(0x40, 2 * P);
    want.fill(0x41, P - 2, P + 2);
    expect(await parent.read(va, 2 * P)).toEqual(want);
    expect(await child.read(va, 2 * P)).toEqual(want);
    expect(k.stats().loanBreaks).toBe(2);
    uvmUnloanPages(pages);
    uvmUnloanAnons(anons);
    await expectAllFree(k);
  });
});

describe('files', () => {
  it('a shared file mapping: the loan keeps the old bytes, the file on disk gets the new ones after sync', async () => {
    const k = new Kernel({ physPages: 128 });
    const data = pattern(43, 3 * P);
    const file = await tmp.file('shared', data);
    const p = k.createProcess();
    const va = await p.mmapFile(file, { shared: true, prot: Prot.READ | Prot.WRITE });
    const pages = await uvmLoan(p.map, va, 3 * P, 'kernel');
    const anons = await uvmLoan(p.map, va, 3 * P, 'anon');
    const other = k.createProcess();
    const ova = await other.mmapFile(file, { shared: true, prot: Prot.READ | Prot.WRITE });
    await other.write(ova + 2 * P + 7, fill(0x5e, 9));
    await p.write(va, fill(0x5f, 5));
    k.checkInvariants();
    expect(bytesOf(pages)).toEqual(data);
    expect(bytesOf(anons.map((a) => a.page!))).toEqual(data);
    await k.sync();
    const want = Buffer.from(data);
    want.fill(0x5e, 2 * P + 7, 2 * P + 16);
    want.fill(0x5f, 0, 5);
    expect(await fs.readFile(file)).toEqual(want);
    expect(await p.read(va, 3 * P)).toEqual(want);
    expect(bytesOf(pages)).toEqual(data);
    uvmUnloanPages(pages);
    uvmUnloanAnons(anons);
    await expectAllFree(k);
    expect(await fs.readFile(file)).toEqual(want);
  });

  it('a private file mapping: the owner copies, the file and the loaned file page stay as they were', async () => {
    const k = new Kernel({ physPages: 128 });
    const data = pattern(44, 2 * P);
    const file = await tmp.file('private', data);
    const p = k.createProcess();
    const va = await p.mmapFile(file, { prot: Prot.READ | Prot.WRITE });
    const pages = await uvmLoan(p.map, va, 2 * P, 'kernel');
    await p.write(va, fill(0x61, 2 * P));
    k.checkInvariants();
    expect(bytesOf(pages)).toEqual(data);
    expect(pages[0]).toBe(objectPage(p, va));
    await k.sync();
    expect(await fs.readFile(file)).toEqual(data);
    uvmUnloanPages(pages);
    await expectAllFree(k);
  });
});

describe('memory pressure in between', () => {
  it('A->A loans of anon memory that is swapped out and back: the borrowed bytes survive, writes copy', async () => {
    const k = new Kernel({ physPages: 40, swapPages: 512 });
    const p = k.createProcess();
    const va = p.mmap(4 * P);
    const data = pattern(45, 4 * P);
    await p.write(va, data);
    const anons = await uvmLoan(p.map, va, 4 * P, 'anon');
    const h = await hog(k, 100);
    await k.idle();
    k.checkInvariants();
    expect(anons.some((a) => a.page === null)).toBe(true);
    /* the owner writes half of it (swapping back in as needed, copying since the anons are shared) */
    await p.write(va + P, fill(0x70, 2 * P));
    k.checkInvariants();
    const resident = anons.filter((a) => a.page !== null);
    for (const a of resident) {
      const i = anons.indexOf(a);
      expect(a.page!.bytes()).toEqual(data.subarray(i * P, (i + 1) * P));
    }
    /* a kernel loan of the loaned anons' pages, through a process that maps them, swaps them in */
    const child = p.fork();
    const view = await uvmLoan(child.map, va, 4 * P, 'kernel');
    const want = Buffer.from(data);
    want.fill(0x70, P, 3 * P);
    expect(bytesOf(view)).toEqual(want);
    expect(anons[0].page).toBe(view[0]);
    expect(anons[3].page).toBe(view[3]);
    h.exit();
    uvmUnloanPages(view);
    uvmUnloanAnons(anons);
    await expectAllFree(k);
  });

  it('snapshots of kernel loans taken before heavy paging are unchanged after it', async () => {
    const k = new Kernel({ physPages: 48, swapPages: 512 });
    const p = k.createProcess();
    const va = p.mmap(6 * P);
    await p.write(va, pattern(46, 6 * P));
    const fva = await p.mmapFile(await tmp.file('pressure', pattern(47, 2 * P)));
    const pages = [
      ...(await uvmLoan(p.map, va, 6 * P, 'kernel')),
      ...(await uvmLoan(p.map, fva, 2 * P, 'kernel')),
    ];
    const before = snapshot(pages);
    const h = await hog(k, 120);
    await p.write(va, fill(0x80, 6 * P));
    await k.idle();
    k.checkInvariants();
    expect(snapshot(pages)).toEqual(before);
    h.exit();
    uvmUnloanPages(pages);
    await expectAllFree(k);
  });
});
