import { Kernel, PAGE_SIZE, type Proc, Prot } from '@loanout/core';
import { describe, expect, it } from 'vitest';
import {
  chainBytes,
  counters,
  expectError,
  expectPanic,
  pattern,
  settled,
  userMemory,
} from '../test/helpers.js';
import {
  type Mbuf,
  MCLBYTES,
  mBuffers,
  mbufCopyin,
  mbufInit,
  mbufLoan,
  mbufStats,
  mCopydata,
  mFreem,
  mLength,
} from './index.js';

const SEED = 3;

async function setup(
  npages = 4,
  physPages = 256,
): Promise<{ k: Kernel; p: Proc; va: number; bytes: Buffer }> {
  const k = new Kernel({ physPages, swapPages: 0 });
  const p = k.createProcess();
  const va = await userMemory(p, npages, SEED);
  return { k, p, va, bytes: pattern(npages * PAGE_SIZE, SEED) };
}

function count(m: Mbuf): number {
  let n = 0;
  for (let x: Mbuf | null = m; x !== null; x = x.next) n++;
  return n;
}

describe('mbufLoan', () => {
  it('loans the whole pages under the bytes to the kernel: wired, and read-only for the user', async () => {
    const { k, p, va, bytes } = await setup();
    const loansBefore = k.stats().loansAnon;
    const m = await mbufLoan(p, va + 10, 2 * PAGE_SIZE);
    expect(mLength(m)).toBe(2 * PAGE_SIZE);
    expect(chainBytes(m).equals(bytes.subarray(10, 10 + 2 * PAGE_SIZE))).toBe(true);
    const s = k.stats();
    expect(s.loanedPages).toBe(3);
    expect(s.wiredPages).toBe(3);
    expect(s.loansAnon - loansBefore).toBe(3);
    expect(mbufStats(k).kvaPagesInUse).toBe(3);
    for (let i = 0; i < 3; i++) {
      expect(p.map.pmap.protAt(va / PAGE_SIZE + i) & Prot.WRITE).toBe(0);
    }
    expect(p.map.pmap.protAt(va / PAGE_SIZE + 3) & Prot.WRITE).toBe(Prot.WRITE);
    k.checkInvariants();
    mFreem(m);
  });

  it('enters the pages read-only in kernel space: the kernel reads them at m.kva and cannot write', async () => {
    const { k, p, va, bytes } = await setup();
    const m = await mbufLoan(p, va + 100, 50);
    expect(k.kread(m.kva, 50).equals(bytes.subarray(100, 150))).toBe(true);
    expectPanic(() => k.kwrite(m.kva, Buffer.from('no')), /read-only/);
    expect(mCopydata(m, 0, 50).equals(bytes.subarray(100, 150))).toBe(true);
    mFreem(m);
  });

  it('freeing the chain removes the kernel mapping, ends the loans, and gives the address space back', async () => {
    const { k, p, va } = await setup();
    const before = counters(k);
    const m = await mbufLoan(p, va + 1, 3 * PAGE_SIZE);
    const kva = m.kva;
    expect(counters(k).kernelVaPages).toBe(before.kernelVaPages + 4);
    mFreem(m);
    expect(counters(k)).toEqual(before);
    expectPanic(() => k.kread(kva, 1), /not mapped/);
    const breaks = k.stats().loanBreaks;
    await p.write(va, Buffer.from('mine again'));
    expect(k.stats().loanBreaks).toBe(breaks);
    k.checkInvariants();
  });

  it('memory never touched is loaned as the shared zero page', async () => {
    const { k, p } = await setup(1);
    const va = p.mmap(3 * PAGE_SIZE);
    const m = await mbufLoan(p, va + 7, 2 * PAGE_SIZE);
    expect(k.stats().loansZero).toBe(3);
    expect(k.stats().loanedPages).toBe(1);
    expect(chainBytes(m).equals(Buffer.alloc(2 * PAGE_SIZE))).toBe(true);
    const frames = new Set(mBuffers(m).map((b) => Math.floor(b.byteOffset / PAGE_SIZE)));
    expect(frames.size).toBe(1);
    k.checkInvariants();
    mFreem(m);
    expect(k.stats().loanedPages).toBe(0);
    k.checkInvariants();
  });

  it('two chains may loan the same pages; each keeps them until it is freed', async () => {
    const { k, p, va, bytes } = await setup();
    const a = await mbufLoan(p, va, PAGE_SIZE);
    const b = await mbufLoan(p, va + 5, 10);
    expect(k.uvm.pages[Math.floor(mBuffers(a)[0].byteOffset / PAGE_SIZE)].loanCount).toBe(2);
    mFreem(a);
    expect(k.stats().loanedPages).toBe(1);
    expect(chainBytes(b).equals(bytes.subarray(5, 15))).toBe(true);
    mFreem(b);
    expect(k.stats().loanedPages).toBe(0);
    k.checkInvariants();
  });

  it('a range running off the end of the mapping is EFAULT, with every loan taken so far dropped', async () => {
    const { k, p, va } = await setup(2);
    const before = counters(k);
    await expectError(mbufLoan(p, va + PAGE_SIZE, 2 * PAGE_SIZE), 'EFAULT');
    expect(counters(k)).toEqual(before);
    k.checkInvariants();
  });

  it('a range larger than the whole loan budget is EINVAL at once', async () => {
    const { k, p, va } = await setup();
    mbufInit(k, { kvaBudgetBytes: 2 * PAGE_SIZE });
    const before = counters(k);
    await expectError(mbufLoan(p, va + 1, 2 * PAGE_SIZE), 'EINVAL');
    expect(counters(k)).toEqual(before);
    expect(mbufStats(k).kvaWaiting).toBe(0);
  });

  it('a process that exits while its loan waits for address space gets ESRCH, and nothing leaks', async () => {
    const { k, p, va } = await setup();
    mbufInit(k, { kvaBudgetBytes: 2 * PAGE_SIZE });
    const other = k.createProcess();
    const ova = await userMemory(other, 2, 9);
    const holder = await mbufLoan(other, ova, 2 * PAGE_SIZE);
    const waiting = mbufLoan(p, va, PAGE_SIZE);
    expect(await settled(waiting)).toBe(false);
    p.exit();
    mFreem(holder);
    await expectError(waiting, 'ESRCH');
    expect(counters(k).loanedPages).toBe(0);
    expect(mbufStats(k).kvaPagesInUse).toBe(0);
    k.checkInvariants();
  });
});

describe('mbufCopyin', () => {
  it('copies the bytes into 2 KiB clusters; nothing is loaned', async () => {
    const { k, p, va, bytes } = await setup();
    const m = await mbufCopyin(p, va + 3, 3 * PAGE_SIZE);
    expect(mLength(m)).toBe(3 * PAGE_SIZE);
    expect(count(m)).toBe(6);
    expect(chainBytes(m).equals(bytes.subarray(3, 3 + 3 * PAGE_SIZE))).toBe(true);
    expect(mCopydata(m, 0, 3 * PAGE_SIZE).equals(bytes.subarray(3, 3 + 3 * PAGE_SIZE))).toBe(true);
    expect(k.stats().loanedPages).toBe(0);
    expect(mbufStats(k).clustersInUse).toBe(6);
    expect(mbufStats(k).kvaPagesInUse).toBe(0);
    mFreem(m);
    expect(mbufStats(k).clustersInUse).toBe(0);
    k.checkInvariants();
  });

  it('the clusters are kernel memory: views of RAM in wired pages of the cluster pool', async () => {
    const { k, p, va } = await setup();
    const m = await mbufCopyin(p, va, 2 * MCLBYTES);
    const poolPages = mbufStats(k).clusterPoolPages;
    expect(poolPages).toBe(1);
    expect(k.stats().wiredPages).toBe(poolPages);
    for (const v of mBuffers(m)) {
      expect(v.buffer).toBe(k.uvm.ram.buffer);
      const pg = k.uvm.pages[Math.floor(v.byteOffset / PAGE_SIZE)];
      expect(pg.uobject).toBe(k.uvm.kernelObject);
      expect(pg.wireCount).toBe(1);
    }
    mFreem(m);
  });

  it('is a copy: a later user write does not reach it, and no loan breaks', async () => {
    const { k, p, va, bytes } = await setup();
    const m = await mbufCopyin(p, va + 1, 100);
    await p.write(va, Buffer.alloc(200, 0x55));
    expect(chainBytes(m).equals(bytes.subarray(1, 101))).toBe(true);
    expect(k.stats().loanBreaks).toBe(0);
    mFreem(m);
  });

  it('faults in memory never touched (zeros)', async () => {
    const { p } = await setup(1);
    const va = p.mmap(2 * PAGE_SIZE);
    const m = await mbufCopyin(p, va + 5, PAGE_SIZE);
    expect(chainBytes(m).equals(Buffer.alloc(PAGE_SIZE))).toBe(true);
    mFreem(m);
  });

  it('more bytes than the whole cluster pool can hold is EINVAL at once (it could never finish)', async () => {
    const { k, p, va } = await setup(8);
    mbufInit(k, { maxClusterBytes: 2 * PAGE_SIZE });
    const before = counters(k);
    await expectError(mbufCopyin(p, va, 4 * MCLBYTES + 1), 'EINVAL');
    expect(counters(k)).toEqual(before);
    const m = await mbufCopyin(p, va, 4 * MCLBYTES);
    expect(mLength(m)).toBe(4 * MCLBYTES);
    mFreem(m);
  });

  it('waits for clusters while the pool is at its limit, and goes on when a chain is freed', async () => {
    const { k, p, va, bytes } = await setup(8);
    mbufInit(k, { maxClusterBytes: 2 * PAGE_SIZE });
    const first = await mbufCopyin(p, va, 3 * MCLBYTES);
    const second = mbufCopyin(p, va + 1, 2 * MCLBYTES);
    expect(await settled(second)).toBe(false);
    mFreem(first);
    const m = await second;
    expect(chainBytes(m).equals(bytes.subarray(1, 1 + 2 * MCLBYTES))).toBe(true);
    mFreem(m);
    expect(mbufStats(k).clustersInUse).toBe(0);
  });

  it('an unreadable range is EFAULT before any cluster is taken: the pool does not even grow', async () => {
    const { k, p, va } = await setup(2);
    const before = counters(k);
    await expectError(mbufCopyin(p, va + PAGE_SIZE, 2 * PAGE_SIZE), 'EFAULT');
    expect(counters(k)).toEqual(before);
    expect(mbufStats(k).clusterPoolPages).toBe(0);
  });
});
