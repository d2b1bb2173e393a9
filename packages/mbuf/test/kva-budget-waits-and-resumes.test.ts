/*
 * Loaned chains map their pages into kernel space until freed, within a budget (NetBSD's somaxkva).
 * A loan that would go over it waits, first come first served, holding nothing, until frees make room;
 * an AbortSignal gives up the wait with EINTR and leaves nothing behind.
 */
import { Kernel, PAGE_SIZE, type Proc } from '@loanout/core';
import { describe, expect, it } from 'vitest';
import { type Mbuf, mbufCopyin, mbufInit, mbufLoan, mbufStats, mFreem } from '../src/index.js';
import { chainBytes, counters, expectError, pattern, settled, userMemory } from './helpers.js';

async function setup(budgetPages: number): Promise<{ k: Kernel; p: Proc; va: number; bytes: Buffer }> {
  const k = new Kernel({ physPages: 256, swapPages: 0 });
  mbufInit(k, { kvaBudgetBytes: budgetPages * PAGE_SIZE });
  const p = k.createProcess();
  const va = await userMemory(p, 16, 11);
  return { k, p, va, bytes: pattern(16 * PAGE_SIZE, 11) };
}

describe('the KVA budget', () => {
  it('a second loan waits, holding nothing, until the first chain is freed; then it completes', async () => {
    const { k, p, va, bytes } = await setup(4);
    const first = await mbufLoan(p, va, 3 * PAGE_SIZE);
    const loaned = k.stats().loanedPages;
    const second = mbufLoan(p, va + 4 * PAGE_SIZE + 1, PAGE_SIZE);
    expect(await settled(second)).toBe(false);
    expect(mbufStats(k).kvaWaiting).toBe(1);
    expect(mbufStats(k).kvaWaits).toBe(1);
    expect(k.stats().loanedPages).toBe(loaned);
    expect(mbufStats(k).kvaPagesInUse).toBe(3);
    mFreem(first);
    const m = await second;
    expect(chainBytes(m).equals(bytes.subarray(4 * PAGE_SIZE + 1, 5 * PAGE_SIZE + 1))).toBe(true);
    expect(mbufStats(k).kvaPagesInUse).toBe(2);
    expect(mbufStats(k).kvaWaiting).toBe(0);
    mFreem(m);
    k.checkInvariants();
  });

  it('waiters go in arrival order: a small loan that would fit waits behind a big one', async () => {
    const { k, p, va } = await setup(4);
    const first = await mbufLoan(p, va, 2 * PAGE_SIZE);
    const order: string[] = [];
    const big = mbufLoan(p, va, 4 * PAGE_SIZE).then((m) => {
      order.push('big');
      return m;
    });
    const small = mbufLoan(p, va + 8 * PAGE_SIZE, 1).then((m) => {
      order.push('small');
      return m;
    });
    expect(await settled(small)).toBe(false);
    expect(mbufStats(k).kvaWaiting).toBe(2);
    mFreem(first);
    const mBig = await big;
    expect(await settled(small)).toBe(false);
    mFreem(mBig);
    mFreem(await small);
    expect(order).toEqual(['big', 'small']);
    expect(mbufStats(k).kvaPagesInUse).toBe(0);
  });

  it('any loaned chain freed makes room; freeing a copied chain does not touch the budget', async () => {
    const { k, p, va } = await setup(2);
    const a = await mbufLoan(p, va, 1);
    const b = await mbufLoan(p, va + PAGE_SIZE, 1);
    const c = await mbufCopyin(p, va, 100);
    const waiting = mbufLoan(p, va + 2 * PAGE_SIZE, 1);
    mFreem(c);
    expect(await settled(waiting)).toBe(false);
    mFreem(b);
    const m = await waiting;
    mFreem(a);
    mFreem(m);
    expect(counters(k).kvaPagesInUse).toBe(0);
  });

  it('an abort while waiting gives EINTR and leaves nothing loaned, wired or reserved', async () => {
    const { k, p, va } = await setup(3);
    const first = await mbufLoan(p, va, 2 * PAGE_SIZE);
    const before = counters(k);
    const ac = new AbortController();
    const waiting = mbufLoan(p, va + 3 * PAGE_SIZE, 2 * PAGE_SIZE, { signal: ac.signal });
    expect(await settled(waiting)).toBe(false);
    ac.abort();
    await expectError(waiting, 'EINTR');
    expect(counters(k)).toEqual(before);
    expect(mbufStats(k).kvaWaiting).toBe(0);
    mFreem(first);
    expect(counters(k).kvaPagesInUse).toBe(0);
    expect(counters(k).loanedPages).toBe(0);
    k.checkInvariants();
  });

  it('an abort of the loan at the head of the line lets the ones behind it in', async () => {
    const { k, p, va } = await setup(3);
    const first = await mbufLoan(p, va, 2 * PAGE_SIZE);
    const ac = new AbortController();
    const big = mbufLoan(p, va, 3 * PAGE_SIZE, { signal: ac.signal });
    const small = mbufLoan(p, va + 5 * PAGE_SIZE, 10);
    expect(await settled(small)).toBe(false);
    ac.abort();
    await expectError(big, 'EINTR');
    const m = await small;
    expect(mbufStats(k).kvaPagesInUse).toBe(3);
    mFreem(m);
    mFreem(first);
  });

  it('a signal aborted before the call is EINTR at once, whether or not the loan would wait', async () => {
    const { k, p, va } = await setup(2);
    const before = counters(k);
    await expectError(mbufLoan(p, va, 10, { signal: AbortSignal.abort() }), 'EINTR');
    expect(counters(k)).toEqual(before);
    const m = await mbufLoan(p, va, 10);
    const holding = counters(k);
    await expectError(mbufLoan(p, va, 2 * PAGE_SIZE, { signal: AbortSignal.abort() }), 'EINTR');
    expect(counters(k)).toEqual(holding);
    expect(mbufStats(k).kvaWaiting).toBe(0);
    mFreem(m);
    k.checkInvariants();
  });

  it('never deadlocks: many loans at once, each up to the whole budget, all complete as chains are freed', async () => {
    const { k, p, va, bytes } = await setup(5);
    const spans: [number, number][] = [];
    for (let i = 0; i < 30; i++) {
      const off = (i * 2897) % (10 * PAGE_SIZE);
      const len = 1 + ((i * 7919) % (4 * PAGE_SIZE));
      spans.push([off, len]);
    }
    const loans = spans.map(([off, len]) => mbufLoan(p, va + off, len));
    expect(mbufStats(k).kvaWaiting).toBeGreaterThan(0);
    for (let i = 0; i < loans.length; i++) {
      const m: Mbuf = await loans[i];
      const [off, len] = spans[i];
      expect(chainBytes(m).equals(bytes.subarray(off, off + len))).toBe(true);
      expect(mbufStats(k).kvaPagesInUse).toBeLessThanOrEqual(5);
      mFreem(m);
    }
    expect(mbufStats(k).kvaWaiting).toBe(0);
    expect(counters(k).kvaPagesInUse).toBe(0);
    expect(counters(k).loanedPages).toBe(0);
    k.checkInvariants();
  });

  it('the default budget is 16 MiB of kernel address space', async () => {
    const k = new Kernel({ physPages: 8192, swapPages: 0 });
    const p = k.createProcess();
    const va = p.mmap(4096 * PAGE_SIZE);
    const m = await mbufLoan(p, va, 4096 * PAGE_SIZE);
    expect(mbufStats(k).kvaPagesInUse).toBe(4096);
    const more = mbufLoan(p, va, 1);
    expect(await settled(more)).toBe(false);
    mFreem(m);
    mFreem(await more);
    await expectError(mbufLoan(p, va, 4096 * PAGE_SIZE + 1), 'EINVAL');
  });
});

describe('a copy waiting for clusters', () => {
  it('gives up with EINTR when its signal aborts, keeping no cluster', async () => {
    const k = new Kernel({ physPages: 64, swapPages: 0 });
    mbufInit(k, { maxClusterBytes: 2 * PAGE_SIZE });
    const p = k.createProcess();
    const va = await userMemory(p, 4, 9);
    const first = await mbufCopyin(p, va, 3 * 2048);
    const ac = new AbortController();
    const waiting = mbufCopyin(p, va, 2 * 2048, { signal: ac.signal });
    expect(await settled(waiting)).toBe(false);
    ac.abort();
    await expectError(waiting, 'EINTR');
    expect(mbufStats(k).clustersInUse).toBe(3);
    mFreem(first);
    const again = await mbufCopyin(p, va, 4 * 2048);
    expect(chainBytes(again).equals(pattern(4 * PAGE_SIZE, 9).subarray(0, 4 * 2048))).toBe(true);
    mFreem(again);
    expect(mbufStats(k).clustersInUse).toBe(0);
    k.checkInvariants();
  });
});
