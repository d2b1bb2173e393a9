import { describe, expect, it } from 'vitest';
import { parseCli, SUITES } from './cli.js';
import { makePlan, sendsPerOp } from './plan.js';
import { type BenchCase, caseName, orderRound } from './runner.js';

describe('parseCli', () => {
  it('defaults to the full run of every suite', () => {
    expect(parseCli([])).toEqual({ quick: false, only: [...SUITES], rounds: null });
  });

  it('takes --quick with or without the -- pnpm passes through', () => {
    expect(parseCli(['--quick']).quick).toBe(true);
    expect(parseCli(['--', '--quick']).quick).toBe(true);
  });

  it('takes --only and --rounds, with = or a separate value', () => {
    expect(parseCli(['--only', 'tcp,echo']).only).toEqual(['tcp', 'echo']);
    expect(parseCli(['--only=soak', '--rounds=7'])).toMatchObject({ only: ['soak'], rounds: 7 });
  });

  it('refuses what it does not know', () => {
    expect(() => parseCli(['--fast'])).toThrow(/unknown argument/);
    expect(() => parseCli(['--only', 'disk'])).toThrow(/unknown suite/);
    expect(() => parseCli(['--rounds', '0'])).toThrow(/rounds/);
  });
});

describe('plan', () => {
  it('quick has fewer sizes, rounds, samples and soak sends than full', () => {
    const q = makePlan(true);
    const f = makePlan(false);
    expect(q.sizes.length).toBeLessThan(f.sizes.length);
    expect(q.rounds).toBeLessThan(f.rounds);
    expect(q.cases.maxTime).toBeLessThan(f.cases.maxTime);
    expect(q.soakSends).toBe(100_000);
    expect(f.soakSends).toBe(1_000_000);
    expect(f.sizes).toEqual([4096, 16384, 65536, 262144, 1048576]);
  });

  it('batches sends into operations of about the batch size', () => {
    expect(sendsPerOp(4096, 65536)).toBe(16);
    expect(sendsPerOp(1 << 20, 65536)).toBe(1);
    expect(sendsPerOp(3000, 65536)).toBe(22);
  });
});

describe('orderRound', () => {
  const c = (mode: BenchCase['mode'], size: number): BenchCase => ({
    suite: 'tcp',
    mode,
    size,
    perOp: 1,
    bytesPerSend: size,
    run: async () => undefined,
  });
  const cases = [c('copy', 1), c('loan', 1), c('raw', 1), c('copy', 2), c('loan', 2), c('raw', 2)];

  it('runs every mode of a size once per round, the order rotating between rounds', () => {
    const r0 = orderRound(cases, 0).map((x) => `${x.mode}${x.size}`);
    const r1 = orderRound(cases, 1).map((x) => `${x.mode}${x.size}`);
    expect(r0).toEqual(['copy1', 'loan1', 'raw1', 'copy2', 'loan2', 'raw2']);
    expect(r1).toEqual(['loan1', 'raw1', 'copy1', 'loan2', 'raw2', 'copy2']);
  });

  it('names cases by suite, mode and size', () => {
    expect(caseName({ suite: 'tcp', mode: 'loan', size: 65536 })).toBe('tcp loan 64 KiB');
    expect(caseName({ suite: 'loan-cost', mode: 'copy', size: 16 })).toBe('loan-cost copy 16p');
  });
});
