import { getEventListeners } from 'node:events';
import { describe, expect, it } from 'vitest';
import { expectError, settled } from '../test/helpers.js';
import { checkSignal, WaitLine } from './kern_condvar.js';

/* a cap of `limit` and the line that waits under it */
function capped(limit: number) {
  const cap = { used: 0, line: null as unknown as WaitLine };
  cap.line = new WaitLine(
    (n) => cap.used + n <= limit,
    (n) => {
      cap.used += n;
    },
  );
  return cap;
}

describe('checkSignal', () => {
  it('passes undefined and a live AbortSignal', () => {
    checkSignal('f', undefined);
    checkSignal('f', new AbortController().signal);
  });

  it('refuses anything else (EINVAL), and an aborted signal (EINTR, the reason as its cause)', async () => {
    for (const bad of [null, 'nope', 0, {}, { aborted: true }])
      await expectError(() => checkSignal('f', bad), 'EINVAL');
    await expectError(() => checkSignal('f', AbortSignal.abort()), 'EINTR');
    const reason = new Error('why');
    let caught: unknown;
    try {
      checkSignal('f', AbortSignal.abort(reason));
    } catch (err) {
      caught = err;
    }
    expect((caught as Error).message).toBe('f: aborted');
    expect((caught as Error).cause).toBe(reason);
  });
});

describe('WaitLine', () => {
  it('lets sleepers in first come first served, admitting each count as it is let in', async () => {
    const cap = capped(3);
    cap.used = 3;
    const order: string[] = [];
    const a = cap.line.sleep('f', 'x', 2, undefined).then(() => order.push('a'));
    const b = cap.line.sleep('f', 'x', 1, undefined).then(() => order.push('b'));
    cap.used = 2;
    cap.line.pump();
    expect(cap.used).toBe(2);
    expect(await settled(a)).toBe(false);
    cap.used = 1;
    cap.line.pump();
    expect(cap.used).toBe(3);
    await a;
    expect(await settled(b)).toBe(false);
    cap.used = 2;
    cap.line.pump();
    await b;
    expect(cap.used).toBe(3);
    expect(order).toEqual(['a', 'b']);
    expect(cap.line.length).toBe(0);
  });

  it('an abort takes a sleeper out of line (EINTR) and lets in those behind it that fit', async () => {
    const cap = capped(2);
    cap.used = 1;
    const ac = new AbortController();
    const big = cap.line.sleep('f', 'room', 2, ac.signal);
    const small = cap.line.sleep('f', 'room', 1, undefined);
    expect(await settled(small)).toBe(false);
    ac.abort();
    await expectError(big, 'EINTR');
    await small;
    expect(cap.used).toBe(2);
    expect(getEventListeners(ac.signal, 'abort').length).toBe(0);
  });
});
