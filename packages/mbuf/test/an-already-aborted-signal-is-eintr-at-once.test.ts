/*
 * Node's convention for AbortSignal options: a signal that has already aborted rejects the call at once
 * with the abort -- here EINTR -- even when the call would not have had to wait. So mbufLoan and
 * mbufCopyin with an aborted signal take nothing (no budget, no loan, no cluster, no pool growth),
 * whether the budget and the pool have room or not. Bad arguments are still EINVAL (checked first),
 * and a signal that is not an AbortSignal is EINVAL, naming the function called; the size limits come
 * after the signal (an oversized request with an aborted signal is EINTR).
 */
import { Kernel, PAGE_SIZE, type Proc } from '@loanout/core';
import { describe, expect, it } from 'vitest';
import { type Mbuf, mbufCopyin, mbufInit, mbufLoan, mbufStats, mFreem } from '../src/index.js';
import { counters, expectError, userMemory } from './helpers.js';

type Call = (p: Proc, va: number, len: number, opts?: { signal?: AbortSignal }) => Promise<Mbuf>;
const calls: [string, string, Call][] = [
  ['mbufLoan', 'mbuf_loan', mbufLoan],
  ['mbufCopyin', 'mbuf_copyin', mbufCopyin],
];

async function setup() {
  const k = new Kernel({ physPages: 128, swapPages: 0 });
  mbufInit(k, { kvaBudgetBytes: 4 * PAGE_SIZE, maxClusterBytes: 4 * PAGE_SIZE });
  const p = k.createProcess();
  const va = await userMemory(p, 8, 91);
  return { k, p, va };
}

/* everything a call could take or change, the pool's size and the wait counters included */
function everything(k: Kernel) {
  const m = mbufStats(k);
  return { ...counters(k), pool: m.clusterPoolPages, waits: m.kvaWaits, waiting: m.kvaWaiting };
}

describe.each(calls)('%s with a signal that has already aborted', (_name, fn, call) => {
  it('is EINTR at once when nothing would wait, and takes nothing', async () => {
    const { k, p, va } = await setup();
    const before = everything(k);
    await expectError(call(p, va + 5, PAGE_SIZE, { signal: AbortSignal.abort() }), 'EINTR');
    expect(everything(k)).toEqual(before);
    k.checkInvariants();
    const m = await call(p, va + 5, PAGE_SIZE, { signal: new AbortController().signal });
    mFreem(m);
    k.checkInvariants();
  });

  it('is EINTR at once when it would have waited, and joins no line', async () => {
    const { k, p, va } = await setup();
    const full = await call(p, va, 4 * PAGE_SIZE);
    const before = everything(k);
    await expectError(call(p, va, PAGE_SIZE, { signal: AbortSignal.abort('stop') }), 'EINTR');
    expect(everything(k)).toEqual(before);
    mFreem(full);
    k.checkInvariants();
  });

  it('carries the abort reason as its cause and names the function', async () => {
    const { p, va } = await setup();
    const reason = new Error('user gave up');
    const err = await call(p, va, 1, { signal: AbortSignal.abort(reason) }).catch((e) => e);
    expect(err.code).toBe('EINTR');
    expect(err.message).toMatch(new RegExp(`^${fn}: `));
    expect(err.cause).toBe(reason);
  });

  it('bad arguments are still EINVAL; a signal that is not an AbortSignal is EINVAL naming the function', async () => {
    const { k, p, va } = await setup();
    const before = everything(k);
    await expectError(call(p, -1, 1, { signal: AbortSignal.abort() }), 'EINVAL');
    await expectError(call(p, va, 0, { signal: AbortSignal.abort() }), 'EINVAL');
    const err = await call(p, va, 1, { signal: 'abort' as never }).catch((e) => e);
    expect(err.code).toBe('EINVAL');
    expect(err.message).toMatch(new RegExp(`^${fn}: signal`));
    expect(everything(k)).toEqual(before);
  });

  it('the size limits come after the signal: more than the whole budget or pool, aborted, is EINTR', async () => {
    const { k, p, va } = await setup();
    const before = everything(k);
    /* the budget and the pool are 4 pages each: 8 pages could never be had */
    await expectError(call(p, va, 8 * PAGE_SIZE), 'EINVAL');
    await expectError(call(p, va, 8 * PAGE_SIZE, { signal: AbortSignal.abort() }), 'EINTR');
    expect(everything(k)).toEqual(before);
  });
});
