/*
 * rows.ts: a run's measurements as the rows of its record (record.ts) -- one row per (suite, mode,
 * size), every figure unrounded (rounding is for the table, report.ts, never for what is kept).
 *
 * Each figure is the median over rounds of that cell's per-round figure, with the lowest and highest
 * round beside it (its spread), how many rounds and how many benchmark.js samples were taken, and
 * benchmark.js's own margin of error (median over rounds). A mode's ratio to its baselines (copy, and
 * raw, the ceiling: suites.ts) is taken within each round, between modes run back to back, and then
 * summarised over rounds the same way: median, min, max (stats.ts says why).
 *
 * Latency rows are different in one way: their percentiles are taken over every round trip of every
 * round pooled (a p99.9 wants thousands of samples), while their spread is the lowest and highest
 * per-round percentile.
 */
import type { SoakResult } from './soak.js';
import {
  crossover,
  key,
  type Measurement,
  median,
  nsPerPage,
  percentile,
  ratio,
  type Summary,
  summarize,
} from './stats.js';
import { baselines, type Mode, SUITES, type SuiteName } from './suites.js';

/** a per-round ratio summarised over rounds */
export interface RatioField {
  median: number;
  min: number;
  max: number;
}

/** what every measured row carries besides its figure */
interface Counted {
  mode: Mode;
  size: number;
  /** rounds measured */
  rounds: number;
  /** benchmark.js samples, all rounds together */
  samples: number;
  /** benchmark.js's relative margin of error, %, median over rounds */
  rme: number;
  /** per-round ratio to copy (modes other than copy and raw, when the suite has copy) */
  vsCopy?: RatioField;
  /** per-round ratio to raw (modes other than raw, when the suite has raw) */
  vsRaw?: RatioField;
}

export interface ThroughputRow extends Counted {
  suite: 'null-sink' | 'tcp' | 'recv' | 'echo';
  /** median over rounds, 10^6 bytes/s */
  mbps: number;
  mbpsMin: number;
  mbpsMax: number;
  /** sends of `size` bytes per second, median over rounds */
  opsPerSec: number;
}

export interface LoanCostRow extends Counted {
  suite: 'loan-cost' | 'transfer-cost';
  /** size: pages per call; ns per page, median over rounds */
  nsPerPage: number;
  nsPerPageMin: number;
  nsPerPageMax: number;
}

export interface LatencyRow extends Counted {
  suite: 'latency';
  /** round trips timed, all rounds together */
  roundTrips: number;
  /** round-trip time percentiles over every round trip of the run, µs */
  p50Us: number;
  p99Us: number;
  p999Us: number;
  maxUs: number;
  meanUs: number;
  /** the lowest and highest per-round percentile */
  p50UsMin: number;
  p50UsMax: number;
  p99UsMin: number;
  p99UsMax: number;
  p999UsMin: number;
  p999UsMax: number;
}

export interface CrossoverRow {
  suite: 'crossover';
  mode: 'loan';
  /** bytes from which loan beats copy in-kernel (null: it never does at the sizes measured) */
  size: number | null;
  /** true when loan already wins at the smallest size measured */
  atMost: boolean;
  /** the sockets layer's calibrated auto threshold on this machine, bytes */
  autoThreshold: number | null;
}

export interface SoakRow {
  suite: 'soak';
  mode: 'loan';
  size: number;
  sends: number;
  heapStartMiB: number;
  heapEndMiB: number;
  heapGrowthPct: number;
  pagesLeaked: number;
  kvaPagesInUse: number;
  seconds: number;
  mbps: number;
  opsPerSec: number;
}

export type Row = ThroughputRow | LoanCostRow | LatencyRow | CrossoverRow | SoakRow;

/** nsValue: a loan-cost measurement in ns per page */
export const nsValue = (m: Measurement) => nsPerPage(m.opsPerSec, m.size);

const sortedLatencies = new WeakMap<Measurement, number[]>();

/**
 * roundPercentile: the p-th percentile of one round's round trips, µs.
 * => NaN for a measurement without latencies
 */
export function roundPercentile(m: Measurement, p: number): number {
  let s = sortedLatencies.get(m);
  if (s === undefined) {
    s = [...(m.latencies ?? [])].sort((a, b) => a - b);
    sortedLatencies.set(m, s);
  }
  return percentile(s, p);
}

/** p50: a latency measurement's per-round median round trip, µs */
export const p50 = (m: Measurement) => roundPercentile(m, 50);

/**
 * figureOf: the per-round figure a suite's ratios and spreads are taken on.
 * => MB/s for throughput suites, ns/page for loan-cost, the p50 round trip for latency
 */
export function figureOf(suite: SuiteName): (m: Measurement) => number {
  const kind = SUITES[suite].kind;
  return kind === 'per-page' ? nsValue : kind === 'latency' ? p50 : (m) => m.mbps;
}

function ratioField(s: Summary): RatioField | undefined {
  return s.n === 0 ? undefined : { median: s.median, min: s.min, max: s.max };
}

/* counted: how much a cell's figure rests on: rounds, samples, benchmark.js's margin */
function counted(g: Measurement[]): Pick<Counted, 'rounds' | 'samples' | 'rme'> {
  return {
    rounds: g.length,
    samples: g.reduce((a, m) => a + m.samples, 0),
    rme: median(g.map((m) => m.rme)),
  };
}

/* ratios: a cell's per-round ratios to its baselines (suites.ts), summarised over rounds */
function ratios(ms: readonly Measurement[], g: Measurement[]): Pick<Counted, 'vsCopy' | 'vsRaw'> {
  const { suite, mode, size } = g[0];
  const out: Pick<Counted, 'vsCopy' | 'vsRaw'> = {};
  for (const base of baselines(suite, mode)) {
    const f = ratioField(ratio(ms, suite, size, mode, base, figureOf(suite)));
    if (f !== undefined) out[base === 'copy' ? 'vsCopy' : 'vsRaw'] = f;
  }
  return out;
}

function throughputRow(ms: readonly Measurement[], g: Measurement[]): ThroughputRow {
  const mbps = summarize(g.map((m) => m.mbps));
  const { suite, mode, size } = g[0];
  return {
    suite: suite as ThroughputRow['suite'],
    mode,
    size,
    mbps: mbps.median,
    mbpsMin: mbps.min,
    mbpsMax: mbps.max,
    opsPerSec: median(g.map((m) => m.opsPerSec)),
    ...counted(g),
    ...ratios(ms, g),
  };
}

function loanCostRow(ms: readonly Measurement[], g: Measurement[]): LoanCostRow {
  const ns = summarize(g.map(nsValue));
  const { suite, mode, size } = g[0];
  return {
    suite: suite as LoanCostRow['suite'],
    mode,
    size,
    nsPerPage: ns.median,
    nsPerPageMin: ns.min,
    nsPerPageMax: ns.max,
    ...counted(g),
    ...ratios(ms, g),
  };
}

function latencyRow(ms: readonly Measurement[], g: Measurement[]): LatencyRow {
  const all = g.flatMap((m) => m.latencies ?? []).sort((a, b) => a - b);
  const per = (p: number) => summarize(g.map((m) => roundPercentile(m, p)));
  const [r50, r99, r999] = [per(50), per(99), per(99.9)];
  const { mode, size } = g[0];
  return {
    suite: 'latency',
    mode,
    size,
    p50Us: percentile(all, 50),
    p99Us: percentile(all, 99),
    p999Us: percentile(all, 99.9),
    maxUs: all.length === 0 ? Number.NaN : all[all.length - 1],
    meanUs: all.reduce((a, x) => a + x, 0) / all.length,
    p50UsMin: r50.min,
    p50UsMax: r50.max,
    p99UsMin: r99.min,
    p99UsMax: r99.max,
    p999UsMin: r999.min,
    p999UsMax: r999.max,
    roundTrips: all.length,
    ...counted(g),
    ...ratios(ms, g),
  };
}

/**
 * buildRows: the rows of a run's record.
 * => a row per measured (suite, mode, size), in the order measured; then one crossover row if the
 *    null-sink suite ran, then one soak row if the soak ran; every figure unrounded
 */
export function buildRows(
  ms: readonly Measurement[],
  autoThreshold: number | null,
  soak: SoakResult | null,
): Row[] {
  const groups = new Map<string, Measurement[]>();
  for (const m of ms) {
    const k = key(m.suite, m.mode, m.size);
    const g = groups.get(k);
    if (g === undefined) groups.set(k, [m]);
    else g.push(m);
  }
  const rows: Row[] = [];
  for (const g of groups.values()) {
    const kind = SUITES[g[0].suite].kind;
    rows.push(
      kind === 'per-page'
        ? loanCostRow(ms, g)
        : kind === 'latency'
          ? latencyRow(ms, g)
          : throughputRow(ms, g),
    );
  }
  if (ms.some((m) => m.suite === 'null-sink')) {
    const x = crossover(ms, 'null-sink', 'loan', 'copy');
    rows.push({ suite: 'crossover', mode: 'loan', size: x.size, atMost: x.atMost, autoThreshold });
  }
  if (soak !== null) rows.push(soakRow(soak));
  return rows;
}

function soakRow(s: SoakResult): SoakRow {
  const opsPerSec = s.sends / s.seconds;
  return {
    suite: 'soak',
    mode: 'loan',
    size: 4096,
    sends: s.sends,
    heapStartMiB: s.heapStartMiB,
    heapEndMiB: s.heapEndMiB,
    heapGrowthPct: s.heapGrowthPct,
    pagesLeaked: s.pagesLeaked,
    kvaPagesInUse: s.kvaPagesInUse,
    seconds: s.seconds,
    mbps: (opsPerSec * 4096) / 1e6,
    opsPerSec,
  };
}
