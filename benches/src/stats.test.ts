import { describe, expect, it } from 'vitest';
import {
  byRound,
  crossover,
  type Measurement,
  median,
  nsPerPage,
  percentile,
  ratio,
  rotate,
  roundRatios,
  summarize,
  throughput,
} from './stats.js';
import type { Mode } from './suites.js';

/* m: a measurement of null-sink (or `suite`) at `size` in round `round` */
function m(
  mode: Mode,
  size: number,
  round: number,
  mbps: number,
  suite: Measurement['suite'] = 'null-sink',
): Measurement {
  return { suite, mode, size, round, mbps, opsPerSec: (mbps * 1e6) / size, samples: 5, rme: 1 };
}

describe('median and summarize', () => {
  it('takes the middle value of an odd count and the mean of the middle two of an even one', () => {
    expect(median([3, 1, 2])).toBe(2);
    expect(median([4, 1, 3, 2])).toBe(2.5);
    expect(median([7])).toBe(7);
  });

  it('is NaN for nothing and leaves its input alone', () => {
    expect(median([])).toBeNaN();
    const xs = [3, 1, 2];
    median(xs);
    expect(xs).toEqual([3, 1, 2]);
  });

  it('summarises median, min, max and count', () => {
    expect(summarize([5, 1, 9, 3])).toEqual({ median: 4, min: 1, max: 9, n: 4 });
    expect(summarize([]).n).toBe(0);
  });
});

describe('per-round ratios', () => {
  const ms = [
    m('copy', 4096, 0, 100),
    m('loan', 4096, 0, 300),
    m('copy', 4096, 1, 400),
    m('loan', 4096, 1, 500),
    m('copy', 4096, 2, 50),
    m('loan', 4096, 2, 100),
    m('loan', 4096, 3, 999),
  ];

  it('divides within each round, never across rounds', () => {
    expect(roundRatios(ms, 'null-sink', 4096, 'loan', 'copy')).toEqual([3, 1.25, 2]);
  });

  it('skips rounds where one side is missing', () => {
    expect(roundRatios(ms, 'null-sink', 4096, 'loan', 'copy')).toHaveLength(3);
  });

  it('differs from the ratio of medians when the machine drifts', () => {
    const r = ratio(ms, 'null-sink', 4096, 'loan', 'copy');
    expect(r).toEqual({ median: 2, min: 1.25, max: 3, n: 3 });
    expect(median([300, 500, 100]) / median([100, 400, 50])).toBe(3);
  });

  it('can compare on another figure (ns per page: lower is better)', () => {
    const lc: Measurement[] = [
      { suite: 'loan-cost', mode: 'loan', size: 16, round: 0, opsPerSec: 1e6, mbps: 0, samples: 5, rme: 1 },
      { suite: 'loan-cost', mode: 'copy', size: 16, round: 0, opsPerSec: 1e5, mbps: 0, samples: 5, rme: 1 },
    ];
    const ns = (x: Measurement) => nsPerPage(x.opsPerSec, x.size);
    expect(roundRatios(lc, 'loan-cost', 16, 'loan', 'copy', ns)[0]).toBeCloseTo(0.1);
  });

  it('byRound keys figures by round', () => {
    expect([...byRound(ms, 'null-sink', 'copy', 4096)]).toEqual([
      [0, 100],
      [1, 400],
      [2, 50],
    ]);
  });
});

describe('crossover', () => {
  const at = (size: number, loan: number) => [m('copy', size, 0, 100), m('loan', size, 0, loan)];

  it('is the smallest size from which loan wins at every larger size', () => {
    const ms = [...at(1024, 120), ...at(2048, 80), ...at(4096, 110), ...at(8192, 200)];
    expect(crossover(ms, 'null-sink', 'loan', 'copy')).toEqual({ size: 4096, atMost: false });
  });

  it('says "at most" when loan already wins at the smallest size', () => {
    const ms = [...at(1024, 120), ...at(2048, 130)];
    expect(crossover(ms, 'null-sink', 'loan', 'copy')).toEqual({ size: 1024, atMost: true });
  });

  it('is null when loan loses at the largest size', () => {
    const ms = [...at(1024, 120), ...at(2048, 90)];
    expect(crossover(ms, 'null-sink', 'loan', 'copy').size).toBeNull();
  });
});

describe('percentile', () => {
  const upTo = (n: number) => Array.from({ length: n }, (_, i) => i + 1);

  it('is the nearest rank: the smallest value with at least p% at or below it', () => {
    expect(percentile(upTo(100), 50)).toBe(50);
    expect(percentile(upTo(100), 99)).toBe(99);
    expect(percentile(upTo(1000), 99.9)).toBe(999);
    expect(percentile(upTo(1000), 100)).toBe(1000);
    expect(percentile(upTo(4), 50)).toBe(2);
    expect(percentile(upTo(4), 51)).toBe(3);
  });

  it('gives the only value of one, the max of few for a high percentile, and NaN for none', () => {
    expect(percentile([7], 50)).toBe(7);
    expect(percentile([7], 99.9)).toBe(7);
    expect(percentile(upTo(10), 99.9)).toBe(10);
    expect(percentile([], 50)).toBeNaN();
  });
});

describe('rotate, throughput, nsPerPage', () => {
  it('rotates so that each mode leads one round', () => {
    expect(rotate(['a', 'b', 'c'], 0)).toEqual(['a', 'b', 'c']);
    expect(rotate(['a', 'b', 'c'], 1)).toEqual(['b', 'c', 'a']);
    expect(rotate(['a', 'b', 'c'], 5)).toEqual(['c', 'a', 'b']);
    expect(rotate([], 3)).toEqual([]);
  });

  it('converts rates to MB/s (10^6 bytes) and ns per page', () => {
    expect(throughput(1000, 4096)).toBeCloseTo(4.096);
    expect(nsPerPage(1e6, 16)).toBeCloseTo(62.5);
  });
});
