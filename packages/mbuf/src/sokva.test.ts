import { getEventListeners } from 'node:events';
import { describe, expect, it } from 'vitest';
import { expectError, expectPanic, settled } from '../test/helpers.js';
import { KvaBudget } from './sokva.js';

describe('KvaBudget', () => {
  it('refuses a budget that is not a positive integer of pages (EINVAL)', async () => {
    for (const bad of [0, -1, 1.5, Number.NaN, Number.POSITIVE_INFINITY]) {
      await expectError(() => new KvaBudget(bad), 'EINVAL');
    }
    expect(new KvaBudget(1).limitPages).toBe(1);
  });

  it('tryReserve takes pages while they fit and refuses past the limit without changing anything', () => {
    const b = new KvaBudget(10);
    expect(b.tryReserve(4)).toBe(true);
    expect(b.tryReserve(6)).toBe(true);
    expect(b.usedPages).toBe(10);
    expect(b.tryReserve(1)).toBe(false);
    expect(b.usedPages).toBe(10);
    b.release(3);
    expect(b.tryReserve(3)).toBe(true);
    expect(b.waits).toBe(0);
  });

  it('rejects bad page counts (EINVAL) and leaves the budget as it was', async () => {
    const b = new KvaBudget(8);
    for (const bad of [0, -2, 2.5, Number.NaN]) {
      await expectError(() => b.tryReserve(bad), 'EINVAL');
      await expectError(b.reserve(bad), 'EINVAL');
    }
    expect(b.usedPages).toBe(0);
    expect(b.waiting).toBe(0);
  });

  it('rejects a request larger than the whole budget at once (EINVAL), since no free could make room', async () => {
    const b = new KvaBudget(4);
    await expectError(b.reserve(5), 'EINVAL');
    expect(b.waiting).toBe(0);
    expect(b.usedPages).toBe(0);
  });

  it('reserve resolves at once when the pages fit', async () => {
    const b = new KvaBudget(4);
    await b.reserve(4);
    expect(b.usedPages).toBe(4);
    expect(b.waits).toBe(0);
  });

  it('a reservation that does not fit waits until a release makes room, then holds its pages', async () => {
    const b = new KvaBudget(4);
    await b.reserve(3);
    const p = b.reserve(2);
    expect(await settled(p)).toBe(false);
    expect(b.waiting).toBe(1);
    expect(b.waits).toBe(1);
    b.release(1);
    await p;
    expect(b.usedPages).toBe(4);
    expect(b.waiting).toBe(0);
  });

  it('lets waiters in first come, first served: a small later request does not pass a big earlier one', async () => {
    const b = new KvaBudget(4);
    await b.reserve(4);
    const order: string[] = [];
    const big = b.reserve(3).then(() => order.push('big'));
    const small = b.reserve(1).then(() => order.push('small'));
    expect(b.tryReserve(1)).toBe(false);
    b.release(2);
    expect(await settled(big)).toBe(false);
    expect(await settled(small)).toBe(false);
    b.release(1);
    await big;
    expect(b.usedPages).toBe(4);
    expect(await settled(small)).toBe(false);
    b.release(1);
    await small;
    expect(order).toEqual(['big', 'small']);
    expect(b.usedPages).toBe(4);
  });

  it('one release lets in every waiter that now fits, in order', async () => {
    const b = new KvaBudget(6);
    await b.reserve(6);
    const ps = [b.reserve(2), b.reserve(2), b.reserve(2)];
    b.release(6);
    await Promise.all(ps);
    expect(b.usedPages).toBe(6);
    expect(b.waiting).toBe(0);
  });

  it('an abort while waiting gives EINTR, takes nothing, and lets the waiters behind it in', async () => {
    const b = new KvaBudget(4);
    await b.reserve(3);
    const ac = new AbortController();
    const blocked = b.reserve(4, ac.signal);
    const behind = b.reserve(1);
    expect(b.waiting).toBe(2);
    ac.abort();
    await expectError(blocked, 'EINTR');
    await behind;
    expect(b.usedPages).toBe(4);
    expect(b.waiting).toBe(0);
  });

  it('an already aborted signal gives EINTR instead of waiting', async () => {
    const b = new KvaBudget(2);
    await b.reserve(2);
    await expectError(b.reserve(1, AbortSignal.abort()), 'EINTR');
    expect(b.waiting).toBe(0);
    expect(b.usedPages).toBe(2);
  });

  it('an already aborted signal gives EINTR at once even when the pages fit, and reserves nothing', async () => {
    const b = new KvaBudget(4);
    const reason = new Error('gave up');
    const err = await b.reserve(1, AbortSignal.abort(reason)).catch((e) => e);
    expect(err.code).toBe('EINTR');
    expect(err.cause).toBe(reason);
    expect(b.usedPages).toBe(0);
    expect(b.waits).toBe(0);
  });

  it('a signal that is not an AbortSignal is EINVAL before anything is queued: later releases work', async () => {
    const b = new KvaBudget(2);
    for (const bad of ['nope', {}, 42, null, { aborted: false, addEventListener() {} }]) {
      await expectError(b.reserve(1, bad as never), 'EINVAL');
    }
    expect(b.usedPages).toBe(0);
    await b.reserve(2);
    for (const bad of ['nope', {}, null]) await expectError(b.reserve(1, bad as never), 'EINVAL');
    expect(b.waiting).toBe(0);
    expect(b.waits).toBe(0);
    const next = b.reserve(1);
    b.release(2);
    await next;
    expect(b.usedPages).toBe(1);
    b.release(1);
    expect(b.usedPages).toBe(0);
  });

  it('an abort after the waiter was let in changes nothing (it keeps its pages)', async () => {
    const b = new KvaBudget(2);
    await b.reserve(2);
    const ac = new AbortController();
    const p = b.reserve(2, ac.signal);
    b.release(2);
    ac.abort();
    await p;
    expect(b.usedPages).toBe(2);
  });

  it('stops listening to the signal once the waiter is let in (one signal may serve many waits)', async () => {
    const b = new KvaBudget(1);
    const ac = new AbortController();
    await b.reserve(1);
    for (let i = 0; i < 20; i++) {
      const p = b.reserve(1, ac.signal);
      expect(getEventListeners(ac.signal, 'abort').length).toBe(1);
      b.release(1);
      await p;
    }
    expect(getEventListeners(ac.signal, 'abort').length).toBe(0);
    expect(b.waits).toBe(20);
  });

  it('panics when more is released than is reserved, and keeps its count', () => {
    const b = new KvaBudget(4);
    expect(b.tryReserve(2)).toBe(true);
    expectPanic(() => b.release(3), /sokvafree/);
    expectPanic(() => b.release(Number.NaN), /sokvafree/);
    expectPanic(() => b.release(-1), /sokvafree/);
    expect(b.usedPages).toBe(2);
    b.release(2);
    expect(b.usedPages).toBe(0);
  });
});
