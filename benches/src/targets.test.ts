import { describe, expect, it } from 'vitest';
import { fmtAgainst, fmtRatio } from './format.js';
import type { RunResults } from './report.js';
import { sampleResults } from './sample-results.js';
import type { Measurement } from './stats.js';
import type { Mode } from './suites.js';
import { evaluateTargets } from './targets.js';

/* withLoanNs: the sample run with loan+unloan at 16 pages costing `ns` per page in every round */
function withLoanNs(ns: number): RunResults {
  const r = sampleResults();
  const calls = 1e9 / (ns * 16);
  r.measurements = r.measurements.map(
    (m): Measurement =>
      m.suite === 'loan-cost' && m.mode === 'loan' && m.size === 16 ? { ...m, opsPerSec: calls } : m,
  );
  return r;
}

const target = (r: RunResults, name: string) => evaluateTargets(r).find((t) => t.name.startsWith(name))!;

describe('targets', () => {
  it('judges each target on the median of this run, n/a when its suite did not run', () => {
    const r = sampleResults();
    const by = (name: string) => target(r, name);
    expect(by('null-sink loan/copy at 4 KiB').met).toBe(true);
    expect(by('null-sink loan/copy at 64 KiB').met).toBeNull();
    expect(by('loan+unloan ns/page at 16').met).toBe(true);
    expect(by('loan+unloan ns/page at 256').met).toBe(false);
    expect(by('tcp loan >= copy').met).toBe(true);
    expect(by('soak heap flat').met).toBe(true);
    expect(by('soak pages all free').met).toBe(true);
  });

  it('holds page transfer to copyout per page: transfer/copy ns ratio <= 1 at 16 and 256 pages', () => {
    const r = sampleResults();
    expect(target(r, 'transfer/copyout cost per page at 16').met).toBeNull();
    /* calls/s: at 16 pages transfer 1e5 (625 ns/page) vs copy 2e5 (312.5); at 256 transfer 1e4 (390.6) vs copy 5e3 (781.3) */
    const calls: [Mode, number, number][] = [
      ['transfer', 16, 1e5],
      ['copy', 16, 2e5],
      ['transfer', 256, 1e4],
      ['copy', 256, 5e3],
    ];
    for (let round = 0; round < 3; round++) {
      for (const [mode, size, opsPerSec] of calls) {
        r.measurements.push({
          suite: 'transfer-cost',
          mode,
          size,
          round,
          opsPerSec,
          mbps: 0,
          samples: 5,
          rme: 1,
        });
      }
    }
    const at16 = target(r, 'transfer/copyout cost per page at 16');
    expect(at16.met).toBe(false);
    expect(at16.figure).toMatch(/^2\.00x/);
    const at256 = target(r, 'transfer/copyout cost per page at 256');
    expect(at256.met).toBe(true);
    expect(at256.figure).toMatch(/^0\.50x/);
  });

  it('judges a leak as missed', () => {
    const r = sampleResults();
    r.soak!.pagesLeaked = 3;
    expect(target(r, 'soak pages all free').met).toBe(false);
  });
});

describe('targets at the boundary: judged unrounded, shown so the figure agrees with the verdict', () => {
  it('40.04 ns against <= 40 ns is missed, and reads 40.04, not 40.0', () => {
    const t = target(withLoanNs(40.04), 'loan+unloan ns/page at 16');
    expect(t.met).toBe(false);
    expect(t.figure).toMatch(/^40\.04 ns/);
  });

  it('39.96 ns is met and reads 39.96; exactly 40 ns is met and reads 40.0', () => {
    const below = target(withLoanNs(39.96), 'loan+unloan ns/page at 16');
    expect(below.met).toBe(true);
    expect(below.figure).toMatch(/^39\.96 ns/);
    const at = target(withLoanNs(40), 'loan+unloan ns/page at 16');
    expect(at.met).toBe(true);
    expect(at.figure).toMatch(/^40\.0 ns/);
  });

  it('writes a ratio just under its goal with the digits that show it', () => {
    expect(fmtRatio({ median: 1.4996, min: 1.2, max: 1.6, n: 3 }, 1.5)).toBe('1.4996x (1.20-1.60)');
    expect(fmtRatio({ median: 1.5, min: 1.2, max: 1.6, n: 3 }, 1.5)).toBe('1.50x (1.20-1.60)');
    expect(fmtRatio({ median: 1.52, min: 1.2, max: 1.6, n: 3 }, 1.5)).toBe('1.52x (1.20-1.60)');
  });

  it('fmtAgainst never shows a figure on the other side of the goal (or on it) than the value', () => {
    for (const goal of [0.2, 1.25, 10, 40]) {
      for (const d of [-1e-6, -0.004, -0.04, 0, 0.004, 0.04, 1e-6]) {
        const x = goal + d;
        const shown = Number(fmtAgainst(x, goal));
        expect(Math.sign(shown - goal)).toBe(Math.sign(x - goal));
      }
    }
  });
});
