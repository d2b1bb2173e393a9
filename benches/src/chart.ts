/*
 * chart.ts: a record's figures drawn offline -- <record>.svg beside every record, and chart.svg
 * beside latest.json.
 *
 * benny's own chart.html loads Chart.js from a CDN, so it is useless on a machine without the network
 * and leaks a request when opened; this is one self-contained SVG file instead, no script at all. One
 * panel per suite, in suites.ts's order: MB/s against send size for the throughput suites (one
 * polyline per mode, a dot per size, a thin bar for the min..max spread over rounds), ns/page against
 * pages for loan-cost, and the p50 round trip against message size for latency (its bar: the lowest
 * and highest round's p50). Both axes are logarithmic: sizes double, and figures span orders of
 * magnitude.
 *
 * Pure: rows in, SVG text out.
 */
import type { LatencyRow, LoanCostRow, Row, ThroughputRow } from './rows.js';
import { MODES, type Mode, SUITE_NAMES, SUITES, type SuiteName } from './suites.js';

interface Point {
  x: number;
  y: number;
  lo: number;
  hi: number;
}

interface Panel {
  suite: SuiteName;
  title: string;
  yLabel: string;
  xLabel: string;
  series: { mode: Mode; points: Point[] }[];
}

/** a colour per mode: a new mode needs one */
const COLORS: Record<Mode, string> = {
  copy: '#d62728',
  loan: '#1f77b4',
  auto: '#2ca02c',
  transfer: '#9467bd',
  zerocopy: '#ff7f0e',
  raw: '#555555',
};
const PW = 480;
const PH = 300;
const M = { left: 64, right: 80, top: 34, bottom: 44 };

/*
 * panels: the chart's panels from a record's rows, in suites.ts's order; suites with no rows are left out.
 */
export function panels(rows: readonly Row[]): Panel[] {
  const out: Panel[] = [];
  for (const suite of SUITE_NAMES) {
    const kind = SUITES[suite].kind;
    const title = suite;
    if (kind === 'throughput') {
      const rs = rows.filter((r): r is ThroughputRow => r.suite === suite);
      if (rs.length === 0) continue;
      out.push({
        suite,
        title: `${title}: MB/s`,
        yLabel: 'MB/s',
        xLabel: 'send size',
        series: seriesOf(rs, (r) => ({ x: r.size, y: r.mbps, lo: r.mbpsMin, hi: r.mbpsMax })),
      });
    } else if (kind === 'per-page') {
      const rs = rows.filter((r): r is LoanCostRow => r.suite === suite);
      if (rs.length === 0) continue;
      out.push({
        suite,
        title: `${title}: ns per page (lower is better)`,
        yLabel: 'ns/page',
        xLabel: 'pages per call',
        series: seriesOf(rs, (r) => ({ x: r.size, y: r.nsPerPage, lo: r.nsPerPageMin, hi: r.nsPerPageMax })),
      });
    } else if (kind === 'latency') {
      const rs = rows.filter((r): r is LatencyRow => r.suite === suite);
      if (rs.length === 0) continue;
      out.push({
        suite,
        title: `${title}: p50 round trip, µs (lower is better)`,
        yLabel: 'µs',
        xLabel: 'message size',
        series: seriesOf(rs, (r) => ({ x: r.size, y: r.p50Us, lo: r.p50UsMin, hi: r.p50UsMax })),
      });
    }
  }
  return out;
}

function seriesOf<R extends { mode: Mode }>(rows: R[], point: (r: R) => Point): Panel['series'] {
  return MODES.map((mode) => ({
    mode,
    points: rows
      .filter((r) => r.mode === mode)
      .map(point)
      .filter((p) => p.x > 0 && p.y > 0)
      .sort((a, b) => a.x - b.x),
  })).filter((s) => s.points.length > 0);
}

/* logScale: value -> pixel on a log axis spanning [lo, hi] onto [a, b] */
function logScale(lo: number, hi: number, a: number, b: number): (v: number) => number {
  const l0 = Math.log(lo);
  const l1 = Math.log(hi);
  const span = l1 - l0 || 1;
  return (v) => a + ((Math.log(v) - l0) / span) * (b - a);
}

function fmtSize(n: number, pages: boolean): string {
  if (pages) return String(n);
  if (n >= 1 << 20) return `${n / (1 << 20)}M`;
  if (n >= 1024) return `${n / 1024}K`;
  return `${n}`;
}

function fmtTick(v: number): string {
  if (v >= 1000) return `${v / 1000}k`;
  return String(v);
}

/* yTicks: 1-2-5 steps per decade between lo and hi (1 per decade when the range is wide) */
function yTicks(lo: number, hi: number): number[] {
  const out: number[] = [];
  const wide = hi / lo > 1e3;
  for (let d = 10 ** Math.floor(Math.log10(lo)); d <= hi; d *= 10) {
    for (const m of wide ? [1] : [1, 2, 5]) {
      const v = d * m;
      if (v >= lo && v <= hi) out.push(v);
    }
  }
  return out;
}

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

/* renderPanel: one panel's SVG group, its top-left corner at (ox, oy) */
function renderPanel(p: Panel, ox: number, oy: number): string {
  const pts = p.series.flatMap((s) => s.points);
  const xs = [...new Set(pts.map((q) => q.x))].sort((a, b) => a - b);
  const yLo = Math.min(...pts.map((q) => Math.min(q.y, q.lo > 0 ? q.lo : q.y))) / 1.25;
  const yHi = Math.max(...pts.map((q) => Math.max(q.y, q.hi))) * 1.25;
  const x0 = ox + M.left;
  const x1 = ox + PW - M.right;
  const y0 = oy + PH - M.bottom;
  const y1 = oy + M.top;
  const sx = xs.length > 1 ? logScale(xs[0], xs[xs.length - 1], x0 + 10, x1 - 10) : () => (x0 + x1) / 2;
  const sy = logScale(yLo, yHi, y0, y1);
  const pages = SUITES[p.suite].kind === 'per-page';
  const g: string[] = [`<g class="panel" data-suite="${esc(p.suite)}">`];
  g.push(
    `<text x="${ox + PW / 2}" y="${oy + 20}" text-anchor="middle" font-weight="bold">${esc(p.title)}</text>`,
  );
  g.push(`<rect x="${x0}" y="${y1}" width="${x1 - x0}" height="${y0 - y1}" fill="none" stroke="#999"/>`);
  for (const v of yTicks(yLo, yHi)) {
    const y = sy(v).toFixed(1);
    g.push(`<line x1="${x0}" y1="${y}" x2="${x1}" y2="${y}" stroke="#eee"/>`);
    g.push(
      `<text x="${x0 - 6}" y="${y}" text-anchor="end" dominant-baseline="middle" font-size="11">${fmtTick(v)}</text>`,
    );
  }
  for (const v of xs) {
    const x = sx(v).toFixed(1);
    g.push(`<line x1="${x}" y1="${y0}" x2="${x}" y2="${y0 + 4}" stroke="#999"/>`);
    g.push(`<text x="${x}" y="${y0 + 16}" text-anchor="middle" font-size="11">${fmtSize(v, pages)}</text>`);
  }
  g.push(
    `<text x="${(x0 + x1) / 2}" y="${y0 + 34}" text-anchor="middle" font-size="12">${esc(p.xLabel)}</text>`,
  );
  g.push(
    `<text x="${ox + 16}" y="${(y0 + y1) / 2}" text-anchor="middle" font-size="12" transform="rotate(-90 ${ox + 16} ${(y0 + y1) / 2})">${esc(p.yLabel)}</text>`,
  );
  p.series.forEach((s, i) => {
    g.push(renderSeries(p.suite, s, sx, sy));
    const ly = y1 + 12 + i * 18;
    g.push(
      `<line x1="${x1 + 10}" y1="${ly}" x2="${x1 + 30}" y2="${ly}" stroke="${COLORS[s.mode]}" stroke-width="2"/>`,
    );
    g.push(`<text x="${x1 + 34}" y="${ly}" dominant-baseline="middle" font-size="12">${esc(s.mode)}</text>`);
  });
  g.push('</g>');
  return g.join('\n');
}

function renderSeries(
  suite: string,
  s: Panel['series'][number],
  sx: (v: number) => number,
  sy: (v: number) => number,
): string {
  const c = COLORS[s.mode];
  const dash = s.mode === 'raw' ? ' stroke-dasharray="6 4"' : '';
  const coords = s.points.map((q) => `${sx(q.x).toFixed(1)},${sy(q.y).toFixed(1)}`).join(' ');
  const out = [
    `<polyline class="series" data-suite="${esc(suite)}" data-mode="${esc(s.mode)}" points="${coords}" fill="none" stroke="${c}" stroke-width="2"${dash}/>`,
  ];
  for (const q of s.points) {
    const x = sx(q.x).toFixed(1);
    if (q.lo > 0 && q.hi > 0 && q.hi > q.lo) {
      out.push(
        `<line x1="${x}" y1="${sy(q.lo).toFixed(1)}" x2="${x}" y2="${sy(q.hi).toFixed(1)}" stroke="${c}" stroke-width="1" opacity="0.6"/>`,
      );
    }
    out.push(
      `<circle cx="${x}" cy="${sy(q.y).toFixed(1)}" r="3" fill="${c}"><title>${esc(s.mode)} ${q.x}: ${Number(q.y.toPrecision(4))}</title></circle>`,
    );
  }
  return out.join('\n');
}

/*
 * renderChart: the whole chart as a standalone SVG document (no script, no external reference).
 * => panels in a 2-column grid; a note when there is nothing to draw
 */
export function renderChart(rows: readonly Row[], subtitle = ''): string {
  const ps = panels(rows);
  const cols = 2;
  const nrows = Math.max(1, Math.ceil(ps.length / cols));
  const W = cols * PW;
  const H = nrows * PH + 40;
  const body = ps.map((p, i) => renderPanel(p, (i % cols) * PW, 40 + Math.floor(i / cols) * PH));
  if (ps.length === 0) body.push(`<text x="${W / 2}" y="${H / 2}" text-anchor="middle">no results</text>`);
  return [
    '<?xml version="1.0" encoding="UTF-8"?>',
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" role="img">`,
    `<title>loanout: copy vs loan, MB/s against send size per mode${subtitle === '' ? '' : ` (${esc(subtitle)})`}</title>`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${W / 2}" y="24" text-anchor="middle" font-size="16" font-weight="bold">loanout: copy vs loan${subtitle === '' ? '' : ` (${esc(subtitle)})`}</text>`,
    ...body,
    '</svg>',
    '',
  ].join('\n');
}
