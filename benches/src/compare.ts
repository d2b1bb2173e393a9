/*
 * compare.ts: `pnpm bench --compare A.json B.json` -- two records side by side, figure by figure.
 *
 * Every row of a record carries one or more figures (MB/s; ns per page; p50/p99/p99.9 round trip;
 * its per-round ratios to copy and to raw), each a median over rounds with its *spread*: the lowest
 * and highest per-round value in that run. Rows are matched by (suite, mode, size), and for each
 * figure the comparison prints A, B (each with its spread) and B/A of the medians.
 *
 * A change is marked -- better or worse, by whether the figure is one where higher is better -- only
 * when it is beyond both runs' own spread: when the spreads don't overlap (every round of B above
 * every round of A, or every one below). A run's spread is what the same code on the same machine
 * varied by within that run, so a difference inside it is not evidence of anything. A figure with
 * fewer than 2 rounds on either side has no spread to speak of and is never marked.
 */
import { fmtNum, table } from './format.js';
import { formatSize } from './plan.js';
import type { Meta } from './record.js';
import type { Row } from './rows.js';

/** one figure of a row, with its spread */
export interface Figure {
  /** what it is: "MB/s", "loan/copy", "p99 µs", ... */
  name: string;
  value: number;
  min: number;
  max: number;
  rounds: number;
  higherIsBetter: boolean;
  /** a ratio (printed as 1.23x) rather than a quantity */
  ratio: boolean;
}

export interface CompareLine {
  suite: string;
  mode: string;
  size: number | null;
  name: string;
  a: Figure | null;
  b: Figure | null;
  /** b.value / a.value; NaN when one is missing */
  ratio: number;
  /** beyond both spreads: which way, judged by the figure's sense; null when not marked */
  change: 'better' | 'worse' | null;
}

type AnyRow = Row & Record<string, unknown>;

const num = (r: AnyRow, k: string) => (typeof r[k] === 'number' ? (r[k] as number) : Number.NaN);

function fig(name: string, value: number, min: number, max: number, rounds: number, higher: boolean): Figure {
  return { name, value, min, max, rounds, higherIsBetter: higher, ratio: false };
}

/* ratioFigs: a row's vsCopy and vsRaw as figures */
function ratioFigs(r: AnyRow, higher: boolean, prefix = ''): Figure[] {
  const out: Figure[] = [];
  for (const [k, base] of [
    ['vsCopy', 'copy'],
    ['vsRaw', 'raw'],
  ] as const) {
    const f = r[k] as { median: number; min: number; max: number } | undefined;
    if (f !== undefined) {
      out.push({
        ...fig(`${prefix}${r.mode}/${base}`, f.median, f.min, f.max, num(r, 'rounds'), higher),
        ratio: true,
      });
    }
  }
  return out;
}

/**
 * figures: the figures of one row, each with its spread and sense.
 * => [] for a row kind that has none to compare (crossover); soak figures have 1 round
 */
export function figures(row: Row): Figure[] {
  const r = row as AnyRow;
  const n = num(r, 'rounds');
  switch (row.suite) {
    case 'loan-cost':
    case 'transfer-cost':
      return [
        fig('ns/page', num(r, 'nsPerPage'), num(r, 'nsPerPageMin'), num(r, 'nsPerPageMax'), n, false),
        ...ratioFigs(r, false),
      ];
    case 'latency':
      return [
        fig('p50 µs', num(r, 'p50Us'), num(r, 'p50UsMin'), num(r, 'p50UsMax'), n, false),
        fig('p99 µs', num(r, 'p99Us'), num(r, 'p99UsMin'), num(r, 'p99UsMax'), n, false),
        fig('p99.9 µs', num(r, 'p999Us'), num(r, 'p999UsMin'), num(r, 'p999UsMax'), n, false),
        ...ratioFigs(r, false, 'p50 '),
      ];
    case 'soak':
      return [
        fig('MB/s', num(r, 'mbps'), num(r, 'mbps'), num(r, 'mbps'), 1, true),
        fig(
          'heap growth %',
          num(r, 'heapGrowthPct'),
          num(r, 'heapGrowthPct'),
          num(r, 'heapGrowthPct'),
          1,
          false,
        ),
      ];
    case 'crossover':
      return [];
    default:
      return [
        fig('MB/s', num(r, 'mbps'), num(r, 'mbpsMin'), num(r, 'mbpsMax'), n, true),
        ...ratioFigs(r, true),
      ];
  }
}

/**
 * beyondSpread: whether B moved beyond both runs' spread, and which way.
 * => 'up' when every round of B is above every round of A (b.min > a.max), 'down' for the reverse,
 *    null when the spreads overlap or either side has fewer than 2 rounds
 */
export function beyondSpread(a: Figure, b: Figure): 'up' | 'down' | null {
  if (!(a.rounds >= 2 && b.rounds >= 2)) return null;
  if (b.min > a.max) return 'up';
  if (b.max < a.min) return 'down';
  return null;
}

/**
 * compareRows: every figure of two records' rows, matched by (suite, mode, size, figure).
 * => B's figures in B's order, each with A's if A has it; then those only A has
 */
export function compareRows(a: readonly Row[], b: readonly Row[]): CompareLine[] {
  const keyed = (rows: readonly Row[]) => {
    const m = new Map<string, { row: Row; f: Figure }>();
    for (const row of rows)
      for (const f of figures(row)) m.set(`${row.suite}|${row.mode}|${row.size}|${f.name}`, { row, f });
    return m;
  };
  const ka = keyed(a);
  const kb = keyed(b);
  const line = (k: string): CompareLine => {
    const x = ka.get(k);
    const y = kb.get(k);
    const row = (y ?? x)!.row;
    const fa = x?.f ?? null;
    const fb = y?.f ?? null;
    const dir = fa !== null && fb !== null ? beyondSpread(fa, fb) : null;
    const sense = (fb ?? fa)!.higherIsBetter;
    return {
      suite: row.suite,
      mode: row.mode,
      size: row.size,
      name: (fb ?? fa)!.name,
      a: fa,
      b: fb,
      ratio: fa !== null && fb !== null ? fb.value / fa.value : Number.NaN,
      change: dir === null ? null : (dir === 'up') === sense ? 'better' : 'worse',
    };
  };
  return [...kb.keys(), ...[...ka.keys()].filter((k) => !kb.has(k))].map(line);
}

function describe(label: string, file: string, meta: Meta | null): string {
  if (meta === null) return `${label} = ${file} (a bare array of rows: no meta)`;
  const where = meta.peer === null ? 'loopback' : `peer ${meta.peer.address}`;
  return `${label} = ${file}: ${meta.quick ? 'quick' : 'full'} run, ${meta.rounds} rounds, ${meta.date}, commit ${meta.commit}${meta.dirty ? ' (dirty)' : ''}, Node ${meta.node}, ${meta.cpu} x${meta.cores}, ${where}`;
}

/* warnings: what makes the two runs less comparable */
function warnings(a: Meta | null, b: Meta | null): string[] {
  if (a === null || b === null) return [];
  const out: string[] = [];
  if (a.quick !== b.quick)
    out.push('one is a quick run and the other a full one: sizes, rounds and samples differ');
  if (a.cpu !== b.cpu || a.cores !== b.cores) out.push('different machines (CPU or cores)');
  if (a.node !== b.node) out.push(`different Node versions (${a.node}, ${b.node})`);
  if ((a.peer?.address ?? null) !== (b.peer?.address ?? null))
    out.push('different far sides (loopback or peer)');
  return out.map((w) => `warning: ${w}`);
}

const show = (f: Figure | null) =>
  f === null
    ? '-'
    : f.ratio
      ? `${f.value.toFixed(2)}x (${f.min.toFixed(2)}-${f.max.toFixed(2)})`
      : f.rounds >= 2
        ? `${fmtNum(f.value)} (${fmtNum(f.min)}-${fmtNum(f.max)})`
        : fmtNum(f.value);

/* onlyLine: the figures one side has and the other hasn't, counted by suite */
function onlyLine(label: string, lines: CompareLine[]): string {
  if (lines.length === 0) return '';
  const bySuite = new Map<string, number>();
  for (const l of lines) bySuite.set(l.suite, (bySuite.get(l.suite) ?? 0) + 1);
  const list = [...bySuite].map(([suite, n]) => `${suite} (${n})`).join(', ');
  return `only in ${label}, not compared: ${list} figures`;
}

/**
 * renderCompare: the comparison as text: who A and B are, warnings, the rule, a line per figure both
 * have, what only one has (counted by suite), and how many changed beyond the spread.
 */
export function renderCompare(
  a: { file: string; meta: Meta | null; rows: Row[] },
  b: { file: string; meta: Meta | null; rows: Row[] },
): string {
  const all = compareRows(a.rows, b.rows);
  const lines = all.filter((l) => l.a !== null && l.b !== null);
  const body = lines.map((l) => [
    l.suite,
    l.size === null
      ? ''
      : l.suite === 'loan-cost' || l.suite === 'transfer-cost'
        ? `${l.size}p`
        : formatSize(l.size),
    l.mode,
    l.name,
    show(l.a),
    show(l.b),
    `${l.ratio.toFixed(2)}x`,
    l.change ?? '',
  ]);
  const changed = lines.filter((l) => l.change !== null);
  const better = changed.filter((l) => l.change === 'better').length;
  const parts = [
    describe('A', a.file, a.meta),
    describe('B', b.file, b.meta),
    ...warnings(a.meta, b.meta),
    '',
    'Each figure: median over rounds (lowest-highest round), and B/A of the medians. A change is marked',
    "better or worse only when it is beyond both runs' spread: every round of B above every round of A,",
    'or every one below. Figures with fewer than 2 rounds on either side are never marked.',
    '',
    lines.length === 0
      ? '  (no figure in common)'
      : table(['suite', 'size', 'mode', 'figure', 'A', 'B', 'B/A', 'change'], body, [0, 1, 2, 3, 7]),
    '',
    onlyLine(
      'A',
      all.filter((l) => l.b === null),
    ),
    onlyLine(
      'B',
      all.filter((l) => l.a === null),
    ),
    `${changed.length} of ${lines.length} figures changed beyond the spread: ${better} better, ${changed.length - better} worse`,
  ];
  return `${parts.filter((p, i) => p !== '' || i < parts.length - 3).join('\n')}\n`;
}
