/*
 * stats.ts: the arithmetic behind every figure the benchmarks print -- medians, spreads, and the
 * per-round ratios that make copy-versus-loan comparisons honest on a noisy machine.
 *
 * Each case is measured once per *round*, and in every round every mode of a size runs once, one
 * right after the other. A ratio (loan/copy, loan/raw) is therefore taken *within* a round, where both
 * sides saw the same machine -- the same CPU frequency, the same neighbours stealing cycles -- and
 * only then summarised over rounds: the median is the figure, min..max the spread. Dividing medians
 * taken over different moments would let drift leak into the ratio; per-round ratios cancel it.
 *
 * Everything here is pure (no I/O, no clocks) so it can be unit-tested.
 */

import type { Mode, SuiteName } from './suites.js';

type Suite = SuiteName;

/** one benny case, measured in one round */
export interface Measurement {
  suite: Suite;
  mode: Mode;
  /** bytes per send (pages per call for loan-cost) */
  size: number;
  round: number;
  /** sends (loan-cost: calls; latency: round trips) per second: benny's median sample */
  opsPerSec: number;
  /** bytes moved per second / 1e6 (loan-cost: pages * 4096 per call) */
  mbps: number;
  /** how many samples benchmark.js took of the case in this round */
  samples: number;
  /** benchmark.js's relative margin of error of the case in this round, % (95% confidence) */
  rme: number;
  /** latency suite: every round trip timed in this round, µs */
  latencies?: number[];
}

export interface Summary {
  median: number;
  min: number;
  max: number;
  n: number;
}

/*
 * median: the middle value (the mean of the two middle values for an even count).
 * => xs non-empty, else NaN; xs is not modified
 */
export function median(xs: readonly number[]): number {
  if (xs.length === 0) return Number.NaN;
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

/*
 * summarize: median and spread (min..max) of a set of values.
 * => NaN fields and n = 0 for an empty set
 */
export function summarize(xs: readonly number[]): Summary {
  if (xs.length === 0) return { median: Number.NaN, min: Number.NaN, max: Number.NaN, n: 0 };
  return { median: median(xs), min: Math.min(...xs), max: Math.max(...xs), n: xs.length };
}

/*
 * key: the identity of a (suite, mode, size) cell.
 * => equal strings for equal cells
 */
export function key(suite: Suite, mode: Mode, size: number): string {
  return `${suite}/${mode}/${size}`;
}

/*
 * byRound: a cell's figure (picked by `value`) in each round it was measured in.
 * => a Map round -> value; a later measurement of the same round replaces an earlier one
 */
export function byRound(
  ms: readonly Measurement[],
  suite: Suite,
  mode: Mode,
  size: number,
  value: (m: Measurement) => number = (m) => m.mbps,
): Map<number, number> {
  const out = new Map<number, number>();
  for (const m of ms) if (m.suite === suite && m.mode === mode && m.size === size) out.set(m.round, value(m));
  return out;
}

/*
 * roundRatios: num/den for one size, taken round by round (only rounds where both were measured).
 * => for throughput (MB/s) num/den > 1 means num is faster
 */
export function roundRatios(
  ms: readonly Measurement[],
  suite: Suite,
  size: number,
  num: Mode,
  den: Mode,
  value: (m: Measurement) => number = (m) => m.mbps,
): number[] {
  const a = byRound(ms, suite, num, size, value);
  const b = byRound(ms, suite, den, size, value);
  const out: number[] = [];
  for (const [round, x] of [...a].sort((p, q) => p[0] - q[0])) {
    const y = b.get(round);
    if (y !== undefined && y > 0) out.push(x / y);
  }
  return out;
}

/*
 * ratio: the per-round ratio num/den of a size, summarised over rounds.
 */
export function ratio(
  ms: readonly Measurement[],
  suite: Suite,
  size: number,
  num: Mode,
  den: Mode,
  value?: (m: Measurement) => number,
): Summary {
  return summarize(roundRatios(ms, suite, size, num, den, value));
}

/*
 * crossover: the smallest size from which `num` beats `den` (median per-round ratio > 1) at that
 * size and at every larger size measured.
 * => { size, atMost }: atMost is true when num already wins at the smallest size measured (the real
 *    crossover may be lower); size null when num doesn't win at the largest size
 */
export function crossover(
  ms: readonly Measurement[],
  suite: Suite,
  num: Mode,
  den: Mode,
): { size: number | null; atMost: boolean } {
  const sizes = [...new Set(ms.filter((m) => m.suite === suite).map((m) => m.size))].sort((a, b) => a - b);
  let from: number | null = null;
  for (let i = sizes.length - 1; i >= 0; i--) {
    const r = ratio(ms, suite, sizes[i], num, den);
    if (!(r.n > 0 && r.median > 1)) break;
    from = sizes[i];
  }
  return { size: from, atMost: from !== null && from === sizes[0] };
}

/**
 * percentile: the p-th percentile of xs by nearest rank: the smallest value with at least p% of the
 * values at or below it (sorted[ceil(p/100 * n) - 1]).
 * => xs sorted ascending (not checked), p in (0, 100]; NaN for an empty xs
 */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  /* the epsilon keeps float error from pushing an exact rank up one (99.9% of 1000 is the 999th) */
  const rank = Math.ceil((p * sorted.length) / 100 - 1e-9);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1];
}

/*
 * rotate: the list started at position r (mod its length) -- the mode order of round r, so that no
 * mode always runs first (warm caches) or last (a tired machine).
 */
export function rotate<T>(xs: readonly T[], r: number): T[] {
  if (xs.length === 0) return [];
  const k = ((r % xs.length) + xs.length) % xs.length;
  return [...xs.slice(k), ...xs.slice(0, k)];
}

/*
 * throughput: MB/s (1 MB = 10^6 bytes) of `opsPerSec` sends of `bytes` each.
 */
export function throughput(opsPerSec: number, bytes: number): number {
  return (opsPerSec * bytes) / 1e6;
}

/*
 * nsPerPage: the cost per page of calls that each handle `pages` pages, at `callsPerSec`.
 */
export function nsPerPage(callsPerSec: number, pages: number): number {
  return 1e9 / (callsPerSec * pages);
}
