/*
 * format.ts: how figures are written in the terminal tables -- a few significant digits, ratios as
 * "median (min-max)", and, where a figure is judged against a target, as many digits as it takes for
 * the figure shown to fall on the same side of the target as the figure measured.
 *
 * Rounding is only ever for the eye: records keep every figure unrounded, and targets are judged on
 * unrounded figures (targets.ts).
 */
import type { Summary } from './stats.js';

/**
 * fmtNum: about 3 significant digits: 12345, 123, 12.3, 1.23.
 * => '-' for NaN and infinities
 */
export function fmtNum(x: number): string {
  if (!Number.isFinite(x)) return '-';
  if (Math.abs(x) >= 100) return x.toFixed(0);
  if (Math.abs(x) >= 10) return x.toFixed(1);
  return x.toFixed(2);
}

/**
 * fmtAgainst: x written with `fmt`, or with more decimals until the written value is on the same side
 * of `goal` as x itself (above, below, or equal) -- so 40.04 against 40 reads 40.04, never 40.0.
 * => at most 8 decimals
 */
export function fmtAgainst(x: number, goal: number, fmt: (v: number) => string = fmtNum): string {
  const side = (v: number) => Math.sign(v - goal);
  let s = fmt(x);
  if (!Number.isFinite(x)) return s;
  const decimals = s.split('.')[1]?.length ?? 0;
  for (let d = decimals + 1; d <= 8 && side(Number(s)) !== side(x); d++) s = x.toFixed(d);
  return s;
}

/**
 * fmtRatio: a summarised ratio as "1.52x (1.31-1.70)": median, then min-max.
 * => '-' for an empty summary (or undefined); `goal` writes the median with fmtAgainst
 */
export function fmtRatio(
  s: Summary | { median: number; min: number; max: number } | undefined,
  goal?: number,
): string {
  if (s === undefined || ('n' in s && s.n === 0)) return '-';
  const two = (v: number) => v.toFixed(2);
  const mid = goal === undefined ? two(s.median) : fmtAgainst(s.median, goal, two);
  return `${mid}x (${two(s.min)}-${two(s.max)})`;
}

/** fmtRange: "min-max" of two figures with fmtNum */
export function fmtRange(min: number, max: number): string {
  return `${fmtNum(min)}-${fmtNum(max)}`;
}

/**
 * table: rows of cells as text, each column padded to its widest cell.
 * => columns listed in `left` (default: the first) left-aligned, the rest right-aligned; each line
 *    indented by two spaces
 */
export function table(head: string[], rows: string[][], left: number[] = [0]): string {
  const all = [head, ...rows];
  const w = head.map((_, i) => Math.max(...all.map((r) => (r[i] ?? '').length)));
  const line = (r: string[]) =>
    r.map((c, i) => (left.includes(i) ? c.padEnd(w[i]) : c.padStart(w[i]))).join('  ');
  return all.map((r) => `  ${line(r)}`.trimEnd()).join('\n');
}
