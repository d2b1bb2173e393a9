/*
 * report.ts: turning measurements into what a person reads -- benches/results/latest.json and the
 * terminal table, with every target marked met or missed.
 *
 * latest.json is an array of rows. Throughput rows are `{ suite, mode, size, mbps, opsPerSec }` (size
 * in bytes, MB = 10^6 bytes, opsPerSec = sends per second), each the median over rounds, with the
 * spread (mbpsMin, mbpsMax), the number of rounds, and for loan/auto the per-round ratio to copy
 * (`vsCopy`) and for tcp/echo to raw (`vsRaw`), each `{ median, min, max }`. loan-cost rows are
 * `{ suite: 'loan-cost', mode, size: pages, nsPerPage }`; one `crossover` row gives the size from
 * which loan beats copy in-kernel; one `soak` row gives the heap and page accounting of the soak.
 *
 * Targets are judged on the median per-round ratio (or median figure); the spread is printed beside
 * it so a reader can see how close a call it was. Nothing here measures anything: it is all pure.
 */
import type { EchoCheck } from './echo.js';
import { formatSize } from './plan.js';
import type { SoakResult } from './soak.js';
import {
  cells,
  crossover,
  type Measurement,
  type Mode,
  nsPerPage,
  ratio,
  type Suite,
  type Summary,
  summarize,
} from './stats.js';
import type { TcpCheck } from './tcp.js';

export interface RatioField {
  median: number;
  min: number;
  max: number;
}

export interface ThroughputRow {
  suite: 'null-sink' | 'tcp' | 'echo';
  mode: Mode;
  size: number;
  mbps: number;
  opsPerSec: number;
  mbpsMin: number;
  mbpsMax: number;
  rounds: number;
  vsCopy?: RatioField;
  vsRaw?: RatioField;
}

export interface LoanCostRow {
  suite: 'loan-cost';
  mode: 'loan' | 'copy';
  size: number;
  nsPerPage: number;
  nsPerPageMin: number;
  nsPerPageMax: number;
  rounds: number;
  vsCopy?: RatioField;
}

export interface CrossoverRow {
  suite: 'crossover';
  mode: 'loan';
  /* bytes from which loan beats copy in-kernel (null: it never does at the sizes measured) */
  size: number | null;
  /* true when loan already wins at the smallest size measured */
  atMost: boolean;
  /* the sockets layer's calibrated auto threshold on this machine, bytes */
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

export type LatestRow = ThroughputRow | LoanCostRow | CrossoverRow | SoakRow;

export interface EchoChecked extends EchoCheck {
  /* bytes the bench's clients wrote to each server */
  written: { copy: number; loan: number; raw: number };
}

export interface RunResults {
  quick: boolean;
  rounds: number;
  measurements: Measurement[];
  autoThreshold: number | null;
  soak: SoakResult | null;
  tcpCheck: TcpCheck | null;
  echoCheck: EchoChecked | null;
  /* what went wrong (a suite that failed), printed under the table */
  errors: string[];
}

export interface TargetResult {
  name: string;
  goal: string;
  figure: string;
  /* null: not measured in this run */
  met: boolean | null;
}

const THROUGHPUT: Suite[] = ['null-sink', 'tcp', 'echo'];
const nsValue = (m: Measurement) => nsPerPage(m.opsPerSec, m.size);

function ratioField(s: Summary): RatioField | undefined {
  if (s.n === 0) return undefined;
  return { median: s.median, min: s.min, max: s.max };
}

/*
 * buildRows: the rows of latest.json.
 * => throughput rows (null-sink, tcp, echo), then loan-cost rows, then one crossover row if the
 *    null-sink suite ran, then one soak row if the soak ran
 */
export function buildRows(r: RunResults): LatestRow[] {
  const ms = r.measurements;
  const rows: LatestRow[] = [];
  for (const c of cells(ms)) {
    if (!THROUGHPUT.includes(c.suite)) continue;
    const row: ThroughputRow = {
      suite: c.suite as ThroughputRow['suite'],
      mode: c.mode,
      size: c.size,
      mbps: c.mbps.median,
      opsPerSec: c.opsPerSec.median,
      mbpsMin: c.mbps.min,
      mbpsMax: c.mbps.max,
      rounds: c.mbps.n,
    };
    if (c.mode !== 'copy' && c.mode !== 'raw')
      row.vsCopy = ratioField(ratio(ms, c.suite, c.size, c.mode, 'copy'));
    if (c.suite !== 'null-sink' && c.mode !== 'raw')
      row.vsRaw = ratioField(ratio(ms, c.suite, c.size, c.mode, 'raw'));
    rows.push(row);
  }
  rows.push(...loanCostRows(ms));
  const x = crossover(ms, 'null-sink', 'loan', 'copy');
  rows.push({
    suite: 'crossover',
    mode: 'loan',
    size: x.size,
    atMost: x.atMost,
    autoThreshold: r.autoThreshold,
  });
  if (r.soak !== null) rows.push(soakRow(r.soak));
  return rows;
}

function loanCostRows(ms: Measurement[]): LoanCostRow[] {
  const out: LoanCostRow[] = [];
  for (const c of cells(ms)) {
    if (c.suite !== 'loan-cost') continue;
    const ns = summarize(
      ms.filter((m) => m.suite === 'loan-cost' && m.mode === c.mode && m.size === c.size).map(nsValue),
    );
    const row: LoanCostRow = {
      suite: 'loan-cost',
      mode: c.mode as 'loan' | 'copy',
      size: c.size,
      nsPerPage: ns.median,
      nsPerPageMin: ns.min,
      nsPerPageMax: ns.max,
      rounds: ns.n,
    };
    if (c.mode === 'loan') row.vsCopy = ratioField(ratio(ms, 'loan-cost', c.size, 'loan', 'copy', nsValue));
    out.push(row);
  }
  return out;
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
    opsPerSec: opsPerSec,
  };
}

/*
 * fmtRatio: a summarised ratio as "1.52x (1.31-1.70)": median, then min-max.
 * => '-' for an empty summary; with a goal, the median is written with fmtAgainst
 */
export function fmtRatio(s: Summary, goal?: number): string {
  if (s.n === 0) return '-';
  const two = (v: number) => v.toFixed(2);
  const mid = goal === undefined ? two(s.median) : fmtAgainst(s.median, goal, two);
  return `${mid}x (${two(s.min)}-${two(s.max)})`;
}

/*
 * fmtAgainst: x written with `fmt`, or with more decimals until the written value is on the same side
 * of `goal` as x itself (above, below, or equal) -- so 40.04 against a 40 ns target reads 40.04, never
 * the 40.0 that would contradict its MISSED.
 */
export function fmtAgainst(x: number, goal: number, fmt: (v: number) => string = fmtNum): string {
  const side = (v: number) => Math.sign(v - goal);
  let s = fmt(x);
  if (!Number.isFinite(x)) return s;
  const decimals = s.split('.')[1]?.length ?? 0;
  for (let d = decimals + 1; d <= 8 && side(Number(s)) !== side(x); d++) s = x.toFixed(d);
  return s;
}

/* fmtNum: 3 significant-ish digits: 12345, 123, 12.3, 1.23 */
export function fmtNum(x: number): string {
  if (!Number.isFinite(x)) return '-';
  if (Math.abs(x) >= 100) return x.toFixed(0);
  if (Math.abs(x) >= 10) return x.toFixed(1);
  return x.toFixed(2);
}

/*
 * evaluateTargets: every target, judged on this run's figures.
 * => one result per target, in a fixed order; met is judged on the median (per-round ratio or
 *    figure), null when the suite didn't run
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
  atLeast('null-sink loan/copy at 4 KiB', ratio(ms, 'null-sink', 4096, 'loan', 'copy'), 1.5);
  atLeast('null-sink loan/copy at 64 KiB', ratio(ms, 'null-sink', 65536, 'loan', 'copy'), 4);
  atLeast('null-sink loan/copy at 1 MiB', ratio(ms, 'null-sink', 1 << 20, 'loan', 'copy'), 5);
  for (const pages of [16, 256]) {
    const ns = summarize(
      ms.filter((m) => m.suite === 'loan-cost' && m.mode === 'loan' && m.size === pages).map(nsValue),
    );
    out.push({
      name: `loan+unloan ns/page at ${pages} pages`,
      goal: '<= 40 ns',
      figure: ns.n === 0 ? '-' : `${fmtAgainst(ns.median, 40)} ns (${fmtNum(ns.min)}-${fmtNum(ns.max)})`,
      met: ns.n === 0 ? null : ns.median <= 40,
    });
    const vs = ratio(ms, 'loan-cost', pages, 'loan', 'copy', nsValue);
    out.push({
      name: `loan/copy cost per page at ${pages} pages`,
      goal: '<= 0.2x',
      figure: fmtRatio(vs, 0.2),
      met: vs.n === 0 ? null : vs.median <= 0.2,
    });
  }
  out.push(flatTarget(ms));
  atLeast('tcp loan/raw at 256 KiB', ratio(ms, 'tcp', 256 * 1024, 'loan', 'raw'), 0.9);
  out.push(tcpLoanVsCopy(ms));
  atLeast('echo loan server/raw at 64 KiB', ratio(ms, 'echo', 65536, 'loan', 'raw'), 0.8);
  out.push(...soakTargets(r.soak));
  return out;
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

/* tcpLoanVsCopy: loan >= copy over TCP at every size from 16 KiB up */
function tcpLoanVsCopy(ms: Measurement[]): TargetResult {
  const sizes = [...new Set(ms.filter((m) => m.suite === 'tcp' && m.size >= 16384).map((m) => m.size))].sort(
    (a, b) => a - b,
  );
  const rs = sizes
    .map((size) => ({ size, r: ratio(ms, 'tcp', size, 'loan', 'copy') }))
    .filter((x) => x.r.n > 0);
  if (rs.length === 0)
    return { name: 'tcp loan >= copy from 16 KiB up', goal: '>= 1x each', figure: '-', met: null };
  const worst = rs.reduce((a, x) => (x.r.median < a.r.median ? x : a));
  return {
    name: 'tcp loan >= copy from 16 KiB up',
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
  return [
    {
      name: `soak heap flat (${s.sends.toLocaleString('en-US')} loans)`,
      goal: '<= 10%',
      figure: `${s.heapGrowthPct.toFixed(1)}% (${s.heapStartMiB.toFixed(1)} -> ${s.heapEndMiB.toFixed(1)} MiB)${s.gc ? '' : ' no --expose-gc!'}`,
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

/*
 * table: rows of cells as text, each column padded to its widest cell.
 * => first column left-aligned, the rest right-aligned; each line indented by two spaces
 */
export function table(head: string[], rows: string[][]): string {
  const all = [head, ...rows];
  const w = head.map((_, i) => Math.max(...all.map((r) => (r[i] ?? '').length)));
  const line = (r: string[]) => r.map((c, i) => (i === 0 ? c.padEnd(w[i]) : c.padStart(w[i]))).join('  ');
  return all.map((r) => `  ${line(r)}`.trimEnd()).join('\n');
}

function mbpsCell(ms: Measurement[], suite: Suite, mode: Mode, size: number): string {
  const s = summarize(
    ms.filter((m) => m.suite === suite && m.mode === mode && m.size === size).map((m) => m.mbps),
  );
  return s.n === 0 ? '-' : fmtNum(s.median);
}

function sizesOf(ms: Measurement[], suite: Suite): number[] {
  return [...new Set(ms.filter((m) => m.suite === suite).map((m) => m.size))].sort((a, b) => a - b);
}

function throughputSection(
  ms: Measurement[],
  suite: Suite,
  title: string,
  modes: Mode[],
  ratios: [Mode, Mode][],
): string {
  const sizes = sizesOf(ms, suite);
  if (sizes.length === 0) return `${title}\n  (not run)`;
  const head = ['size', ...modes.map((m) => `${m} MB/s`), ...ratios.map(([a, b]) => `${a}/${b}`)];
  const rows = sizes.map((size) => [
    formatSize(size),
    ...modes.map((m) => mbpsCell(ms, suite, m, size)),
    ...ratios.map(([a, b]) => fmtRatio(ratio(ms, suite, size, a, b))),
  ]);
  return `${title}\n${table(head, rows)}`;
}

function loanCostSection(ms: Measurement[]): string {
  const sizes = sizesOf(ms, 'loan-cost');
  if (sizes.length === 0) return 'loan-cost\n  (not run)';
  const cell = (mode: Mode, pages: number) => {
    const s = summarize(
      ms.filter((m) => m.suite === 'loan-cost' && m.mode === mode && m.size === pages).map(nsValue),
    );
    return s.n === 0 ? '-' : fmtNum(s.median);
  };
  const rows = sizes.map((p) => [
    String(p),
    cell('loan', p),
    cell('copy', p),
    fmtRatio(ratio(ms, 'loan-cost', p, 'loan', 'copy', nsValue)),
  ]);
  return `loan-cost: uvmLoan(kernel)+uvmUnloanPages vs mbufCopyin of whole pages, ns/page\n${table(['pages', 'loan ns/page', 'copy ns/page', 'loan/copy'], rows)}`;
}

function crossoverLine(r: RunResults): string {
  if (!r.measurements.some((m) => m.suite === 'null-sink')) return '';
  const x = crossover(r.measurements, 'null-sink', 'loan', 'copy');
  const at =
    x.size === null
      ? 'loan never beats copy in-kernel at the sizes measured'
      : `loan beats copy in-kernel from ${x.atMost ? '<= ' : ''}${formatSize(x.size)} up`;
  const auto =
    r.autoThreshold === null ? '' : ` (sockets' calibrated auto threshold: ${formatSize(r.autoThreshold)})`;
  return `crossover: ${at}${auto}`;
}

function checkLines(r: RunResults): string[] {
  const out: string[] = [];
  if (r.soak !== null) {
    const s = r.soak;
    out.push(
      `soak: ${s.sends.toLocaleString('en-US')} in-kernel 4 KiB loans in ${s.seconds.toFixed(1)} s; heap ${s.heapStartMiB.toFixed(2)} -> ${s.heapEndMiB.toFixed(2)} MiB (${s.heapGrowthPct.toFixed(1)}%); ${s.pagesLeaked} pages on loan, ${s.kvaPagesInUse} kva pages left${s.invariantError === null ? '; invariants OK' : `; INVARIANTS: ${s.invariantError}`}`,
    );
  }
  if (r.tcpCheck !== null) {
    const t = r.tcpCheck;
    out.push(
      `tcp: receiver got ${t.received.toLocaleString('en-US')} of ${t.sent.toLocaleString('en-US')} bytes sent ${t.received === t.sent ? '(all)' : '(MISMATCH)'}; during a raw burst at ${fmtNum(t.burstMbps)} MB/s the receiver used ${t.receiverCpuPct.toFixed(0)}% of a core, the sender ${t.senderCpuPct.toFixed(0)}%`,
    );
  }
  if (r.echoCheck !== null) {
    const e = r.echoCheck;
    const ok = (m: 'copy' | 'loan' | 'raw') =>
      e[m].bytesEchoed === e.written[m] ? 'all' : `MISMATCH: ${e[m].bytesEchoed}/${e.written[m]}`;
    out.push(
      `echo: servers echoed copy ${ok('copy')}, loan ${ok('loan')}, raw ${ok('raw')}; the copy server loaned ${e.copy.loanedBytes} B and copied ${e.copy.copiedBytes.toLocaleString('en-US')} B, the loan server loaned ${e.loan.loanedBytes.toLocaleString('en-US')} B and copied ${e.loan.copiedBytes} B`,
    );
  }
  return out;
}

/*
 * renderReport: the terminal report -- one table per suite, the crossover, the checks, the targets.
 * => plain text, no colour; ratios are "median (min-max)" over per-round ratios
 */
export function renderReport(r: RunResults): string {
  const ms = r.measurements;
  const parts = [
    `loanout benchmarks (${r.quick ? 'quick' : 'full'} run, ${r.rounds} alternating rounds; figures are medians over rounds, ratios per-round "median (min-max)")`,
    throughputSection(
      ms,
      'null-sink',
      'null-sink: in-kernel send to a sink touching one byte per page',
      ['copy', 'loan', 'auto'],
      [
        ['loan', 'copy'],
        ['auto', 'copy'],
      ],
    ),
    loanCostSection(ms),
    crossoverLine(r),
    throughputSection(
      ms,
      'tcp',
      'tcp: loanout kernel sender -> node:net receiver in another process, 127.0.0.1',
      ['copy', 'loan', 'auto', 'raw'],
      [
        ['loan', 'copy'],
        ['loan', 'raw'],
      ],
    ),
    throughputSection(
      ms,
      'echo',
      'echo: raw client <-> echo server in another process (MB/s each way)',
      ['copy', 'loan', 'raw'],
      [
        ['loan', 'copy'],
        ['loan', 'raw'],
      ],
    ),
    checkLines(r).join('\n'),
    targetSection(evaluateTargets(r)),
  ];
  if (r.errors.length > 0) parts.push(`ERRORS\n${r.errors.map((e) => `  ${e}`).join('\n')}`);
  return `${parts.filter((p) => p !== '').join('\n\n')}\n`;
}

function targetSection(ts: TargetResult[]): string {
  const mark = (m: boolean | null) => (m === null ? 'n/a' : m ? 'met' : 'MISSED');
  const rows = ts.map((t) => [t.name, t.goal, t.figure, mark(t.met)]);
  const met = ts.filter((t) => t.met === true).length;
  const judged = ts.filter((t) => t.met !== null).length;
  return `targets: ${met} of ${judged} met\n${table(['target', 'goal', 'this run', ''], rows)}`;
}
