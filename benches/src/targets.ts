/*
 * targets.ts: the goals the benchmarks are held to, judged on this run's figures.
 *
 * A target is judged on the unrounded median -- of the per-round ratios, or of the per-round figure
 * -- and printed with its spread (the lowest and highest round) so a reader can see how close a call
 * it was. The median is printed with as many digits as it takes to fall on the same side of the goal
 * as the measured value (format.ts: fmtAgainst): a met "<= 40 ns" never reads "40.1", a missed one never
 * "40.0". A target whose suite didn't run is `n/a`, not missed.
 */
import { fmtAgainst, fmtNum, fmtRatio } from './format.js';
import { formatSize } from './plan.js';
import type { RunResults } from './report.js';
import { nsValue } from './rows.js';
import type { SoakResult } from './soak.js';
import { type Measurement, ratio, type Summary, summarize } from './stats.js';

export interface TargetResult {
  name: string;
  goal: string;
  figure: string;
  /** null: not measured in this run */
  met: boolean | null;
}

/**
 * evaluateTargets: every target, judged on this run's figures.
 * => one result per target, in a fixed order; met judged on the unrounded median, null when the
 *    suite didn't run
 */
export function evaluateTargets(r: RunResults): TargetResult[] {
  const ms = r.measurements;
  const out: TargetResult[] = [];
  const atLeast = (name: string, s: Summary, goal: number) =>
    out.push({
      name,
      goal: `>= ${goal}x`,
      figure: fmtRatio(s, goal),
      met: s.n === 0 ? null : s.median >= goal,
    });
  const atMost = (name: string, s: Summary, goal: number) =>
    out.push({
      name,
      goal: `<= ${goal}x`,
      figure: fmtRatio(s, goal),
      met: s.n === 0 ? null : s.median <= goal,
    });
  atLeast('null-sink loan/copy at 4 KiB', ratio(ms, 'null-sink', 4096, 'loan', 'copy'), 1.5);
  atLeast('null-sink loan/copy at 64 KiB', ratio(ms, 'null-sink', 65536, 'loan', 'copy'), 4);
  atLeast('null-sink loan/copy at 1 MiB', ratio(ms, 'null-sink', 1 << 20, 'loan', 'copy'), 5);
  for (const pages of [16, 256]) {
    out.push(nsTarget(ms, pages, 40));
    atMost(
      `loan/copy cost per page at ${pages} pages`,
      ratio(ms, 'loan-cost', pages, 'loan', 'copy', nsValue),
      0.2,
    );
  }
  out.push(flatTarget(ms));
  for (const pages of [16, 256]) {
    const vs = ratio(ms, 'transfer-cost', pages, 'transfer', 'copy', nsValue);
    atMost(`transfer/copyout cost per page at ${pages} pages`, vs, 1);
  }
  out.push(everySize(ms, 'tcp', 'loan', 'raw', 16 * 1024, 0.9));
  out.push(tcpLoanVsCopy(ms));
  atLeast('recv transfer/copy at 64 KiB', ratio(ms, 'recv', 65536, 'transfer', 'copy'), 1.3);
  atLeast('recv transfer/copy at 1 MiB', ratio(ms, 'recv', 1 << 20, 'transfer', 'copy'), 1.5);
  out.push(everySize(ms, 'recv', 'transfer', 'raw', 64 * 1024, 0.9));
  atLeast('echo loan server/raw at 64 KiB', ratio(ms, 'echo', 65536, 'loan', 'raw'), 0.8);
  for (const size of [65536, 256 * 1024, 1 << 20]) {
    atLeast(
      `echo zerocopy server/raw at ${formatSize(size)}`,
      ratio(ms, 'echo', size, 'zerocopy', 'raw'),
      0.95,
    );
  }
  atLeast('echo zerocopy/loan server at 64 KiB', ratio(ms, 'echo', 65536, 'zerocopy', 'loan'), 1.3);
  out.push(...soakTargets(r.soak));
  return out;
}

/* nsTarget: loan+unloan costs at most `goal` ns per page at `pages` pages (median over rounds) */
function nsTarget(ms: Measurement[], pages: number, goal: number): TargetResult {
  const ns = summarize(
    ms.filter((m) => m.suite === 'loan-cost' && m.mode === 'loan' && m.size === pages).map(nsValue),
  );
  return {
    name: `loan+unloan ns/page at ${pages} pages`,
    goal: `<= ${goal} ns`,
    figure: ns.n === 0 ? '-' : `${fmtAgainst(ns.median, goal)} ns (${fmtNum(ns.min)}-${fmtNum(ns.max)})`,
    met: ns.n === 0 ? null : ns.median <= goal,
  };
}

/*
 * flatTarget: loan+unloan per page must not grow from 16 to 256 pages: ns@256 / ns@16 <= 1.25 (per
 * round). It may well fall -- the call's fixed cost spread over more pages -- which is the point of
 * "no allocation and no await per page"; growth would mean per-page work that shouldn't be there.
 */
function flatTarget(ms: Measurement[]): TargetResult {
  const ns = (size: number) =>
    new Map(
      ms
        .filter((m) => m.suite === 'loan-cost' && m.mode === 'loan' && m.size === size)
        .map((m) => [m.round, nsValue(m)]),
    );
  const a = ns(256);
  const b = ns(16);
  const xs = [...a].filter(([rd]) => b.has(rd)).map(([rd, v]) => v / b.get(rd)!);
  const s = summarize(xs);
  return {
    name: 'loan+unloan per page not growing 16 -> 256 pages (ns@256 / ns@16)',
    goal: '<= 1.25x',
    figure: fmtRatio(s, 1.25),
    met: s.n === 0 ? null : s.median <= 1.25,
  };
}

/*
 * everySize: mode/base >= goal in `suite` at every size from `from` up (per-round medians); the figure
 * is the worst size's
 */
function everySize(
  ms: Measurement[],
  suite: 'tcp' | 'recv',
  mode: 'loan' | 'transfer',
  base: 'raw' | 'copy',
  from: number,
  goal: number,
): TargetResult {
  const sizes = [...new Set(ms.filter((m) => m.suite === suite && m.size >= from).map((m) => m.size))].sort(
    (a, b) => a - b,
  );
  const rs = sizes.map((size) => ({ size, r: ratio(ms, suite, size, mode, base) })).filter((x) => x.r.n > 0);
  const name = `${suite} ${mode}/${base} at every size from ${formatSize(from)} up`;
  if (rs.length === 0) return { name, goal: `>= ${goal}x each`, figure: '-', met: null };
  const worst = rs.reduce((a, x) => (x.r.median < a.r.median ? x : a));
  return {
    name,
    goal: `>= ${goal}x each`,
    figure: `worst ${fmtRatio(worst.r, goal)} at ${formatSize(worst.size)}`,
    met: rs.every((x) => x.r.median >= goal),
  };
}

/* tcpLoanVsCopy: loan >= copy over TCP at every size from 16 KiB up */
function tcpLoanVsCopy(ms: Measurement[]): TargetResult {
  const sizes = [...new Set(ms.filter((m) => m.suite === 'tcp' && m.size >= 16384).map((m) => m.size))].sort(
    (a, b) => a - b,
  );
  const rs = sizes
    .map((size) => ({ size, r: ratio(ms, 'tcp', size, 'loan', 'copy') }))
    .filter((x) => x.r.n > 0);
  const name = 'tcp loan >= copy from 16 KiB up';
  if (rs.length === 0) return { name, goal: '>= 1x each', figure: '-', met: null };
  const worst = rs.reduce((a, x) => (x.r.median < a.r.median ? x : a));
  return {
    name,
    goal: '>= 1x each',
    figure: `worst ${fmtRatio(worst.r, 1)} at ${formatSize(worst.size)}`,
    met: rs.every((x) => x.r.median >= 1),
  };
}

function soakTargets(s: SoakResult | null): TargetResult[] {
  if (s === null) {
    return [
      { name: 'soak heap flat', goal: '<= 10%', figure: '-', met: null },
      { name: 'soak pages all free', goal: '0 leaked', figure: '-', met: null },
    ];
  }
  const heap = `${fmtAgainst(s.heapGrowthPct, 10, (v) => v.toFixed(1))}%`;
  return [
    {
      name: `soak heap flat (${s.sends.toLocaleString('en-US')} loans)`,
      goal: '<= 10%',
      figure: `${heap} (${s.heapStartMiB.toFixed(1)} -> ${s.heapEndMiB.toFixed(1)} MiB)${s.gc ? '' : ' no --expose-gc!'}`,
      met: s.heapGrowthPct <= 10,
    },
    {
      name: 'soak pages all free',
      goal: '0 leaked',
      figure: `${s.pagesLeaked} loaned, ${s.kvaPagesInUse} kva pages${s.invariantError === null ? '' : `, ${s.invariantError}`}`,
      met: s.pagesLeaked === 0 && s.kvaPagesInUse === 0 && s.invariantError === null,
    },
  ];
}
