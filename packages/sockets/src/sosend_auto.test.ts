import { afterEach, describe, expect, it } from 'vitest';
import { drainedPair, expectAtRest, pattern, Scope, settled, userMemory } from '../test/helpers.js';
import { autoThresholdKnown, crossover, sosendAutoThreshold } from './sosend_auto.js';

const scope = new Scope();
afterEach(() => scope.cleanup());

describe('sosendAutoThreshold (where auto starts to loan)', () => {
  it('is measured once, on first use, in a scratch kernel: a positive size, the same ever after', async () => {
    const k = scope.kernel();
    const before = k.stats();
    expect(autoThresholdKnown()).toBeNull();
    const [a, b] = await Promise.all([sosendAutoThreshold(), sosendAutoThreshold()]);
    expect(a).toBe(b);
    expect(Number.isSafeInteger(a)).toBe(true);
    expect(a).toBeGreaterThan(0);
    /* a power of two from 1 KiB to twice the largest size tried (128 KiB: loaning never won) */
    expect(a & (a - 1)).toBe(0);
    expect(a).toBeGreaterThanOrEqual(1024);
    expect(a).toBeLessThanOrEqual(128 * 1024);
    expect(autoThresholdKnown()).toBe(a);
    const again = sosendAutoThreshold();
    expect(await settled(again)).toBe(true);
    expect(await again).toBe(a);
    /* the measurement ran elsewhere: this kernel saw none of it */
    expect(k.stats()).toEqual(before);
  });

  it('is what an auto send without an autoThreshold option goes by: copy below it, loan from it up', async () => {
    const k = scope.kernel();
    const t = await sosendAutoThreshold();
    const { so, got } = await drainedPair(scope, k);
    const p = k.createProcess();
    const data = pattern(2 * t, 11);
    const va = await userMemory(p, data.length, data);
    const below = await so.send(p, va, t - 1, { mode: 'auto' });
    expect(below).toMatchObject({ bytes: t - 1, loanedBytes: 0, copiedBytes: t - 1 });
    const at = await so.send(p, va + t - 1, t);
    expect(at).toMatchObject({ bytes: t, loanedBytes: t, copiedBytes: 0 });
    await Promise.all([below.done, at.done]);
    await so.close();
    expect((await got).bytes.equals(data.subarray(0, 2 * t - 1))).toBe(true);
    p.exit();
    expectAtRest(k);
  });

  it('gives way to an explicit autoThreshold', async () => {
    const k = scope.kernel();
    const loanAll = await drainedPair(scope, k, { autoThreshold: 1 });
    const copyAll = await drainedPair(scope, k, { autoThreshold: Number.MAX_SAFE_INTEGER });
    const p = k.createProcess();
    const va = await userMemory(p, 4096);
    const l = await loanAll.so.send(p, va, 10, { mode: 'auto' });
    const c = await copyAll.so.send(p, va, 4096, { mode: 'auto' });
    expect(l).toMatchObject({ loanedBytes: 10, copiedBytes: 0 });
    expect(c).toMatchObject({ loanedBytes: 0, copiedBytes: 4096 });
    await Promise.all([l.done, c.done]);
    await loanAll.so.close();
    await copyAll.so.close();
    p.exit();
    expectAtRest(k);
  });
});

describe('crossover', () => {
  it('is the smallest size from which loaning wins at that size and every larger one', () => {
    expect(crossover([0.5, 0.8, 0.9, 1.2, 1.5, 2, 3])).toBe(8192);
    expect(crossover([2, 2, 2, 2, 2, 2, 2])).toBe(1024);
  });

  it('ignores a lone noisy win below a loss', () => {
    expect(crossover([0.5, 1.3, 0.9, 0.95, 1.1, 1.4, 2])).toBe(16384);
  });

  it('says "never" (twice the largest size) when loaning does not win at the largest size', () => {
    expect(crossover([2, 2, 2, 2, 2, 2, 0.9])).toBe(131072);
  });
});
