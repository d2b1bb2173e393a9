/*
 * Every bad input is refused with its KernelError code, and a refused call leaves nothing behind: no
 * page loaned or wired, no kernel address space reserved or mapped, no cluster taken. Broken rules
 * (a chain freed twice) panic.
 */
import { Kernel, PAGE_SIZE, type Proc, Prot, VM_MAX_ADDRESS } from '@loanout/core';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  type Mbuf,
  MCLBYTES,
  mbufCopyin,
  mbufInit,
  mbufLoan,
  mCopydata,
  mFreem,
  mLength,
} from '../src/index.js';
import { type Counters, counters, expectError, expectPanic, userMemory } from './helpers.js';

type Call = (p: Proc, va: number, len: number) => Promise<Mbuf>;
const calls: [string, Call][] = [
  ['mbufLoan', (p, va, len) => mbufLoan(p, va, len)],
  ['mbufCopyin', mbufCopyin],
];

let k: Kernel;
let p: Proc;
let va: number;
let live: Mbuf[];
let before: Counters;

/* a kernel with chains of both kinds alive, so "as before" is not just "zero" */
beforeEach(async () => {
  k = new Kernel({ physPages: 256, swapPages: 0 });
  mbufInit(k, { kvaBudgetBytes: 16 * PAGE_SIZE, maxClusterBytes: 8 * PAGE_SIZE });
  p = k.createProcess();
  va = await userMemory(p, 4, 51);
  live = [await mbufLoan(p, va + 1, PAGE_SIZE), await mbufCopyin(p, va + 2, MCLBYTES + 1)];
  before = counters(k);
});

afterEach(() => {
  expect(counters(k)).toEqual(before);
  k.checkInvariants();
  for (const m of live) mFreem(m);
  expect(counters(k).loanedPages).toBe(0);
});

describe.each(calls)('%s refuses bad input and leaves nothing behind', (_name, call) => {
  it('not a process: EINVAL', async () => {
    const fake = { kernel: k, map: p.map, pid: 99, exited: false };
    for (const bad of [null, undefined, 42, {}, fake]) await expectError(call(bad as never, va, 1), 'EINVAL');
  });

  it('a bad address (negative, NaN, fractional, infinite, not a number): EINVAL', async () => {
    for (const bad of [-1, -PAGE_SIZE, Number.NaN, va + 0.5, Number.POSITIVE_INFINITY, '65536']) {
      await expectError(call(p, bad as never, 1), 'EINVAL');
    }
  });

  it('a bad length (0, -1, NaN, fractional, huge, past the top of user space): EINVAL', async () => {
    for (const bad of [
      0,
      -1,
      Number.NaN,
      1.5,
      2 ** 40,
      Number.MAX_SAFE_INTEGER,
      VM_MAX_ADDRESS - va + 1,
      '1',
    ]) {
      await expectError(call(p, va, bad as never), 'EINVAL');
    }
  });

  it('unmapped memory: EFAULT', async () => {
    await expectError(call(p, 0, 1), 'EFAULT');
    await expectError(call(p, VM_MAX_ADDRESS - 1, 1), 'EFAULT');
    const gone = p.mmap(2 * PAGE_SIZE);
    p.munmap(gone, 2 * PAGE_SIZE);
    await expectError(call(p, gone + 5, 10), 'EFAULT');
  });

  it('a range that runs off the end of its mapping into unmapped memory: EFAULT', async () => {
    const end = p.mmap(2 * PAGE_SIZE);
    await p.write(end, Buffer.alloc(2 * PAGE_SIZE, 1));
    const gap = p.mmap(PAGE_SIZE);
    p.munmap(gap, PAGE_SIZE);
    expect(gap).toBe(end + 2 * PAGE_SIZE);
    await expectError(call(p, end + 10, 2 * PAGE_SIZE), 'EFAULT');
    await expectError(call(p, end + 2 * PAGE_SIZE - 1, 2), 'EFAULT');
  });

  it('PROT_NONE (and write-only) memory: EFAULT', async () => {
    const none = p.mmap(2 * PAGE_SIZE, { prot: Prot.NONE });
    await expectError(call(p, none, 10), 'EFAULT');
    const guarded = p.mmap(2 * PAGE_SIZE);
    await p.write(guarded, Buffer.alloc(2 * PAGE_SIZE, 2));
    p.mprotect(guarded + PAGE_SIZE, PAGE_SIZE, Prot.NONE);
    await expectError(call(p, guarded + 100, PAGE_SIZE), 'EFAULT');
    const writeOnly = p.mmap(PAGE_SIZE, { prot: Prot.WRITE });
    await expectError(call(p, writeOnly, 1), 'EFAULT');
  });

  it('a process that has exited: ESRCH', async () => {
    const q = k.createProcess();
    const qva = await userMemory(q, 1, 52);
    q.exit();
    await expectError(call(q, qva, 10), 'ESRCH');
  });
});

describe('mbufLoan options and limits', () => {
  it('bad options (not an object, a signal that is not an AbortSignal): EINVAL', async () => {
    for (const bad of [null, 'fast', 7, { signal: {} }, { signal: 'abort' }]) {
      await expectError(mbufLoan(p, va, 10, bad as never), 'EINVAL');
    }
  });

  it('more pages than the whole loan budget: EINVAL, without waiting', async () => {
    const big = p.mmap(20 * PAGE_SIZE);
    await expectError(mbufLoan(p, big, 16 * PAGE_SIZE + 1), 'EINVAL');
    await expectError(mbufLoan(p, big + 1, 16 * PAGE_SIZE), 'EINVAL');
  });
});

describe('mbufCopyin limits', () => {
  it('more bytes than the whole cluster pool: EINVAL, without waiting', async () => {
    const big = p.mmap(20 * PAGE_SIZE);
    await expectError(mbufCopyin(p, big, 8 * PAGE_SIZE + 1), 'EINVAL');
  });
});

describe('chain operations', () => {
  it('mCopydata out of range: EINVAL', async () => {
    const m = live[0];
    const n = mLength(m);
    await expectError(() => mCopydata(m, 0, n + 1), 'EINVAL');
    await expectError(() => mCopydata(m, n, 1), 'EINVAL');
    await expectError(() => mCopydata(m, -1, 2), 'EINVAL');
    await expectError(() => mCopydata(m, 0.5, 1), 'EINVAL');
  });

  it('mbufInit a second time: EBUSY; with bad options: still EBUSY first (the system exists)', async () => {
    await expectError(() => mbufInit(k), 'EBUSY');
    await expectError(() => mbufInit(k, { kvaBudgetBytes: 1 }), 'EBUSY');
  });

  it('mbufInit with bad options on a fresh kernel: EINVAL', async () => {
    const fresh = new Kernel({ physPages: 16, swapPages: 0 });
    await expectError(() => mbufInit(fresh, { kvaBudgetBytes: -1 }), 'EINVAL');
    await expectError(() => mbufInit(fresh, { maxClusterBytes: Number.NaN }), 'EINVAL');
  });

  it('freeing a chain twice panics, and the second free changes nothing', async () => {
    const l = await mbufLoan(p, va + 3, 2 * PAGE_SIZE);
    const c = await mbufCopyin(p, va + 3, 2 * PAGE_SIZE);
    mFreem(l);
    mFreem(c);
    /* the cluster pool may have grown (it keeps its pages): what counts is from here on */
    before = counters(k);
    expect(before.loanedPages).toBe(2);
    expect(before.clustersInUse).toBe(2);
    expectPanic(() => mFreem(l), /freed twice/);
    expectPanic(() => mFreem(c), /freed twice/);
  });
});
