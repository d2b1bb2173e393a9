/*
 * Chains taken now, or from pinned pages. mbufLoanNow / mbufCopyinNow build a chain at once or give
 * null -- never a sleep, and nothing left behind; mbufLoanAnons / mbufCopyinAnons build one from pages
 * the caller pinned earlier by loaning them to anons, so it holds the bytes of that moment whatever
 * the process has written since. `nowait` turns a wait in line for the shared loan budget or clusters
 * into null (with the release broadcast, waitRelease, to try again), and `overdraft` lets a copy past
 * the pool's limit.
 */
import { Kernel, PAGE_SIZE, uvmLoanNow, uvmUnloanAnons } from '@loanout/core';
import { describe, expect, it } from 'vitest';
import {
  MCLBYTES,
  mbufCopyin,
  mbufCopyinAnons,
  mbufCopyinNow,
  mbufInit,
  mbufLoan,
  mbufLoanAnons,
  mbufLoanNow,
  mbufStats,
  mFreem,
} from '../src/index.js';
import { chainBytes, counters, expectError, pattern, userMemory } from './helpers.js';

describe('mbufLoanNow and mbufCopyinNow', () => {
  it('build the chain at once from resident memory, at any offset', async () => {
    const k = new Kernel({ physPages: 256 });
    const p = k.createProcess();
    const va = await userMemory(p, 4, 1);
    const data = pattern(4 * PAGE_SIZE, 1);
    /* the pool grows on first use (that may sleep): grow it first */
    mFreem(await mbufCopyin(p, va, 5000));
    const l = mbufLoanNow(p, va + 5, 3 * PAGE_SIZE)!;
    const c = mbufCopyinNow(p, va + 7, 5000)!;
    expect(chainBytes(l).equals(data.subarray(5, 5 + 3 * PAGE_SIZE))).toBe(true);
    expect(chainBytes(c).equals(data.subarray(7, 5007))).toBe(true);
    expect(mbufStats(k)).toMatchObject({
      loanChains: 1,
      copyChains: 2,
      loanedBytes: 3 * PAGE_SIZE,
      copiedBytes: 10_000,
    });
    mFreem(l);
    mFreem(c);
    p.exit();
    expect(counters(k)).toMatchObject({ loanedPages: 0, kvaPagesInUse: 0, clustersInUse: 0 });
    k.checkInvariants();
  });

  it('give null, holding nothing, when memory is untouched (a fault would be needed) or the budgets are short', async () => {
    const k = new Kernel({ physPages: 256 });
    mbufInit(k, { kvaBudgetBytes: 2 * PAGE_SIZE, maxClusterBytes: PAGE_SIZE });
    const p = k.createProcess();
    const untouched = p.mmap(PAGE_SIZE);
    const va = await userMemory(p, 4, 2);
    const before = counters(k);
    expect(mbufCopyinNow(p, untouched, 100)).toBeNull();
    const held = mbufLoanNow(p, va, 2 * PAGE_SIZE)!;
    expect(mbufLoanNow(p, va, 10)).toBeNull();
    const two = mbufCopyinNow(p, va, 2 * MCLBYTES);
    /* the pool has no page yet: getting one means growing, which is not "now" */
    expect(two).toBeNull();
    mFreem(held);
    expect(counters(k)).toEqual(before);
    k.checkInvariants();
    p.exit();
  });

  it('refuse bad arguments as their waiting twins do (EINVAL, EFAULT, ESRCH)', async () => {
    const k = new Kernel({ physPages: 64 });
    const p = k.createProcess();
    const va = await userMemory(p, 1, 3);
    await expectError(() => mbufLoanNow(p, va, 0), 'EINVAL');
    await expectError(() => mbufCopyinNow(p, va, 2 * PAGE_SIZE), 'EFAULT');
    await expectError(() => mbufCopyinNow(p, va, 10, { overdraft: 'yes' as never }), 'EINVAL');
    await expectError(() => mbufLoan(p, va, 10, { overdraft: true }), 'EINVAL');
    await expectError(() => mbufLoan(p, va, 10, { nowait: 1 as never }), 'EINVAL');
    p.exit();
    await expectError(() => mbufLoanNow(p, va, 10), 'ESRCH');
    expect(counters(k)).toMatchObject({ loanedPages: 0, kvaPagesInUse: 0, clustersInUse: 0 });
    k.checkInvariants();
  });
});

describe('nowait and overdraft', () => {
  it('nowait gives null where a wait in line would be, and waitRelease wakes at the next release', async () => {
    const k = new Kernel({ physPages: 256 });
    const sys = mbufInit(k, { kvaBudgetBytes: PAGE_SIZE, maxClusterBytes: PAGE_SIZE });
    const p = k.createProcess();
    const va = await userMemory(p, 2, 4);
    const l = await mbufLoan(p, va, 10);
    expect(await mbufLoan(p, va, 10, { nowait: true })).toBeNull();
    const c = await mbufCopyin(p, va, 2 * MCLBYTES);
    expect(await mbufCopyin(p, va, 10, { nowait: true })).toBeNull();
    let woke = 0;
    void sys.waitRelease().then(() => woke++);
    void sys.waitRelease().then(() => woke++);
    mFreem(l);
    await Promise.resolve();
    await Promise.resolve();
    expect(woke).toBe(2);
    /* an overdraft copy goes past the pool's limit at once */
    const over = (await mbufCopyin(p, va, 2 * MCLBYTES, { nowait: true, overdraft: true }))!;
    expect(chainBytes(over).equals(pattern(2 * PAGE_SIZE, 4).subarray(0, 2 * MCLBYTES))).toBe(true);
    expect(mbufStats(k)).toMatchObject({ overdrafts: 1, clustersInUse: 4 });
    mFreem(over);
    mFreem(c);
    p.exit();
    expect(counters(k)).toMatchObject({ loanedPages: 0, kvaPagesInUse: 0, clustersInUse: 0 });
    k.checkInvariants();
  });
});

describe('mbufLoanAnons and mbufCopyinAnons', () => {
  it('carry the bytes of the moment the range was pinned, whatever was written since', async () => {
    const k = new Kernel({ physPages: 256 });
    const p = k.createProcess();
    const va = await userMemory(p, 3, 5);
    const data = pattern(3 * PAGE_SIZE, 5);
    const anons = uvmLoanNow(p.map, va, 3 * PAGE_SIZE, 'anon')!;
    await p.write(va, Buffer.alloc(3 * PAGE_SIZE, 0xff));
    const l = (await mbufLoanAnons(k, anons, 100, 2 * PAGE_SIZE))!;
    const c = (await mbufCopyinAnons(k, anons.slice(1), 9, PAGE_SIZE + 50))!;
    expect(chainBytes(l).equals(data.subarray(100, 100 + 2 * PAGE_SIZE))).toBe(true);
    expect(chainBytes(c).equals(data.subarray(PAGE_SIZE + 9, 2 * PAGE_SIZE + 59))).toBe(true);
    k.checkInvariants();
    mFreem(l);
    mFreem(c);
    uvmUnloanAnons(anons);
    p.exit();
    expect(counters(k)).toMatchObject({ loanedPages: 0, kvaPagesInUse: 0, clustersInUse: 0 });
    expect(k.stats().anons).toBe(0);
    k.checkInvariants();
  });

  it('refuse anons that are not exactly the pages the bytes span, or of another kernel (EINVAL)', async () => {
    const k = new Kernel({ physPages: 64 });
    const other = new Kernel({ physPages: 64 });
    const p = k.createProcess();
    const va = await userMemory(p, 2, 6);
    const anons = uvmLoanNow(p.map, va, 2 * PAGE_SIZE, 'anon')!;
    const before = counters(k);
    await expectError(mbufLoanAnons(k, anons, 0, 3 * PAGE_SIZE), 'EINVAL');
    await expectError(mbufLoanAnons(k, anons, PAGE_SIZE, 10), 'EINVAL');
    await expectError(mbufCopyinAnons(k, anons, 0, 10), 'EINVAL');
    await expectError(mbufCopyinAnons(other, anons.slice(0, 1), 0, 10), 'EINVAL');
    await expectError(mbufLoanAnons({} as never, anons.slice(0, 1), 0, 10), 'EINVAL');
    expect(counters(k)).toEqual(before);
    uvmUnloanAnons(anons);
    p.exit();
    k.checkInvariants();
  });
});
