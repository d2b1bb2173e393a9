/*
 * report.ts: the terminal report of a run -- a table per suite, the crossover, the checks that each
 * side did what its mode says, and every target marked met or missed.
 *
 * The tables are drawn from the record's own rows (rows.ts), so what is printed and what is kept are
 * the same figures, only rounded for the eye. Every row says how much it rests on: its spread (the
 * lowest and highest round), benchmark.js's sample count and margin of error. A row per (size, mode),
 * the size written once per group. Nothing here measures anything: it is all pure.
 */
import type { EchoCheck } from './echo.js';
import { fmtNum, fmtRange, fmtRatio, table } from './format.js';
import { formatSize } from './plan.js';
import type { RecvCheck } from './recv.js';
import { buildRows, type LatencyRow, type LoanCostRow, type Row, type ThroughputRow } from './rows.js';
import type { SoakResult } from './soak.js';
import type { Measurement } from './stats.js';
import { SUITE_NAMES, SUITES, type SuiteName } from './suites.js';
import { evaluateTargets, type TargetResult } from './targets.js';
import type { TcpCheck } from './tcp.js';

export interface RunResults {
  quick: boolean;
  rounds: number;
  /** where the network suites' far side was: "another process (the sink) on 127.0.0.1", or the peer */
  far: string;
  measurements: Measurement[];
  autoThreshold: number | null;
  soak: SoakResult | null;
  tcpCheck: TcpCheck | null;
  recvCheck: RecvCheck | null;
  echoCheck: EchoCheck | null;
  latencyCheck: EchoCheck | null;
  /** what went wrong (a suite that failed), printed under the table */
  errors: string[];
}

/** the note under the heading: what the columns are, and why a ratio isn't the ratio of two columns */
export const NOTE = [
  'Figures are medians over rounds; min-max is the lowest and highest round; n counts benchmark.js samples',
  '(all rounds) and ±rme is its margin of error. "vs copy" and "vs raw" are medians of ratios taken within',
  'each round between modes run back to back, so drift between rounds cancels out of them -- which is why',
  'they can differ from the ratio of the two medians printed beside them.',
].join('\n');

type Col<R> = [head: string, cell: (r: R) => string];

const ratioCols = (suite: SuiteName, what = ''): Col<ThroughputRow | LoanCostRow | LatencyRow>[] => {
  const modes = SUITES[suite].modes;
  const out: Col<ThroughputRow | LoanCostRow | LatencyRow>[] = [];
  if (modes.includes('copy') && modes.some((m) => m !== 'copy' && m !== 'raw'))
    out.push([`${what}vs copy`, (r) => fmtRatio(r.vsCopy)]);
  if (modes.includes('raw')) out.push([`${what}vs raw`, (r) => fmtRatio(r.vsRaw)]);
  return out;
};

const counted: Col<ThroughputRow | LoanCostRow>[] = [
  ['±rme', (r) => `±${r.rme.toFixed(0)}%`],
  ['n', (r) => String(r.samples)],
];

/* columns: what a suite's table shows, by the kind of figure its rows carry */
function columns(suite: SuiteName): Col<Row>[] {
  const kind = SUITES[suite].kind;
  if (kind === 'per-page') {
    return [
      ['ns/page', (r) => fmtNum((r as LoanCostRow).nsPerPage)],
      ['min-max', (r) => fmtRange((r as LoanCostRow).nsPerPageMin, (r as LoanCostRow).nsPerPageMax)],
      ...(counted as Col<Row>[]),
      ...(ratioCols(suite) as Col<Row>[]),
    ];
  }
  if (kind === 'latency') {
    const l =
      (f: (r: LatencyRow) => string): ((r: Row) => string) =>
      (r) =>
        f(r as LatencyRow);
    return [
      ['p50', l((r) => fmtNum(r.p50Us))],
      ['p99', l((r) => fmtNum(r.p99Us))],
      ['p99.9', l((r) => fmtNum(r.p999Us))],
      ['max', l((r) => fmtNum(r.maxUs))],
      ['p50 min-max', l((r) => fmtRange(r.p50UsMin, r.p50UsMax))],
      ['n', l((r) => String(r.roundTrips))],
      ...(ratioCols(suite, 'p50 ') as Col<Row>[]),
    ];
  }
  return [
    ['MB/s', (r) => fmtNum((r as ThroughputRow).mbps)],
    ['min-max', (r) => fmtRange((r as ThroughputRow).mbpsMin, (r as ThroughputRow).mbpsMax)],
    ...(counted as Col<Row>[]),
    ...(ratioCols(suite) as Col<Row>[]),
  ];
}

/**
 * suiteSection: one suite's table: a row per (size, mode), sizes ascending, modes in the suite's order.
 * => "(not run)" under the title when the suite has no rows
 */
export function suiteSection(rows: readonly Row[], suite: SuiteName, far: string): string {
  const info = SUITES[suite];
  const title = info.title(far);
  const mine = rows.filter((r) => r.suite === suite) as (ThroughputRow | LoanCostRow | LatencyRow)[];
  if (mine.length === 0) return `${title}\n  (not run)`;
  const sizes = [...new Set(mine.map((r) => r.size))].sort((a, b) => a - b);
  const cols = columns(suite);
  const out: string[][] = [];
  for (const size of sizes) {
    const group = info.modes.flatMap((mode) => mine.filter((r) => r.size === size && r.mode === mode));
    group.forEach((r, i) => {
      const label = i > 0 ? '' : info.kind === 'per-page' ? `${size}p` : formatSize(size);
      out.push([label, r.mode, ...cols.map(([, cell]) => cell(r))]);
    });
  }
  const first = info.kind === 'per-page' ? 'pages' : 'size';
  return `${title}\n${table([first, 'mode', ...cols.map(([h]) => h)], out, [0, 1])}`;
}

function crossoverLine(rows: readonly Row[]): string {
  const x = rows.find((r) => r.suite === 'crossover');
  if (x === undefined || x.suite !== 'crossover') return '';
  const at =
    x.size === null
      ? 'loan never beats copy in-kernel at the sizes measured'
      : `loan beats copy in-kernel from ${x.atMost ? '<= ' : ''}${formatSize(x.size)} up`;
  const auto =
    x.autoThreshold === null ? '' : ` (sockets' calibrated auto threshold: ${formatSize(x.autoThreshold)})`;
  return `crossover: ${at}${auto}`;
}

/**
 * echoLine: what the echo servers did -- every byte written came back, and each kernel server
 * loaned or copied as its mode says.
 */
export function echoLine(label: string, e: EchoCheck): string {
  const modes = Object.keys(e);
  const ok = (m: string) =>
    e[m].echoed === e[m].written ? 'all' : `MISMATCH: ${e[m].echoed}/${e[m].written}`;
  const kernel = modes
    .filter((m) => e[m].loanedBytes !== undefined)
    .map(
      (m) =>
        `the ${m} server loaned ${e[m].loanedBytes!.toLocaleString('en-US')} B and copied ${e[m].copiedBytes!.toLocaleString('en-US')} B`,
    );
  return `${label}: servers echoed ${modes.map((m) => `${m} ${ok(m)}`).join(', ')}${kernel.length > 0 ? `; ${kernel.join(', ')}` : ''}`;
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
      `tcp: the sink received ${t.received.toLocaleString('en-US')} of ${t.sent.toLocaleString('en-US')} bytes sent ${t.received === t.sent ? '(all)' : '(MISMATCH)'}; during a raw burst at ${fmtNum(t.burstMbps)} MB/s the sink used ${t.receiverCpuPct.toFixed(0)}% of a core, the sender ${t.senderCpuPct.toFixed(0)}%`,
    );
  }
  if (r.recvCheck !== null) {
    const c = r.recvCheck;
    out.push(
      `recv: the receivers got ${c.received.toLocaleString('en-US')} of ${c.sent.toLocaleString('en-US')} bytes the source sent ${c.received === c.sent ? '(all)' : '(MISMATCH)'}; the kernel receivers copied ${c.copiedBytes.toLocaleString('en-US')} B and moved ${c.transferredBytes.toLocaleString('en-US')} B by page transfer`,
    );
  }
  if (r.echoCheck !== null) out.push(echoLine('echo', r.echoCheck));
  if (r.latencyCheck !== null) out.push(echoLine('latency', r.latencyCheck));
  return out;
}

function targetSection(ts: TargetResult[]): string {
  const mark = (m: boolean | null) => (m === null ? 'n/a' : m ? 'met' : 'MISSED');
  const rows = ts.map((t) => [t.name, t.goal, t.figure, mark(t.met)]);
  const met = ts.filter((t) => t.met === true).length;
  const judged = ts.filter((t) => t.met !== null).length;
  return `targets: ${met} of ${judged} met (judged on unrounded medians)\n${table(['target', 'goal', 'this run', ''], rows)}`;
}

/**
 * renderReport: the terminal report -- the note, one table per suite that has a table, the
 * crossover, the checks, the targets, the errors.
 * => plain text, no colour
 */
export function renderReport(r: RunResults): string {
  const rows = buildRows(r.measurements, r.autoThreshold, r.soak);
  const named = SUITE_NAMES.filter((s) => SUITES[s].kind !== 'soak');
  const tables = named.map((s) => suiteSection(rows, s, r.far));
  /* the crossover comes from the null-sink suite: under the in-kernel tables */
  tables.splice(named.indexOf('loan-cost') + 1, 0, crossoverLine(rows));
  const parts = [
    `loanout benchmarks (${r.quick ? 'quick' : 'full'} run, ${r.rounds} alternating rounds)\n${NOTE}`,
    ...tables,
    checkLines(r).join('\n'),
    targetSection(evaluateTargets(r)),
  ];
  if (r.errors.length > 0) parts.push(`ERRORS\n${r.errors.map((e) => `  ${e}`).join('\n')}`);
  return `${parts.filter((p) => p !== '').join('\n\n')}\n`;
}
