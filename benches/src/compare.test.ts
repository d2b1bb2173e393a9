import { describe, expect, it } from 'vitest';
import { beyondSpread, compareRows, type Figure, figures, renderCompare } from './compare.js';
import { buildRows, type Row, type ThroughputRow } from './rows.js';
import { sampleResults } from './sample-results.js';

const f = (value: number, min: number, max: number, rounds = 3): Figure => ({
  name: 'MB/s',
  value,
  min,
  max,
  rounds,
  higherIsBetter: true,
  ratio: false,
});

const tcp = (
  mode: ThroughputRow['mode'],
  mbps: number,
  min: number,
  max: number,
  rounds = 3,
): ThroughputRow => ({
  suite: 'tcp',
  mode,
  size: 65536,
  mbps,
  mbpsMin: min,
  mbpsMax: max,
  opsPerSec: 1,
  rounds,
  samples: 12,
  rme: 5,
});

describe('the spread rule', () => {
  it('marks a change only when the two spreads do not overlap', () => {
    expect(beyondSpread(f(100, 90, 110), f(130, 111, 140))).toBe('up');
    expect(beyondSpread(f(100, 90, 110), f(70, 60, 89))).toBe('down');
    expect(beyondSpread(f(100, 90, 110), f(130, 110, 140))).toBeNull();
    expect(beyondSpread(f(100, 90, 110), f(85, 80, 90))).toBeNull();
    /* a big move of the median alone is not enough if one round of B lies inside A's spread */
    expect(beyondSpread(f(100, 90, 110), f(200, 105, 210))).toBeNull();
  });

  it('never marks a figure with fewer than 2 rounds on either side', () => {
    expect(beyondSpread(f(100, 100, 100, 1), f(300, 300, 300, 3))).toBeNull();
    expect(beyondSpread(f(100, 90, 110), f(300, 300, 300, 1))).toBeNull();
  });
});

describe('compareRows', () => {
  it("gives per figure both values and B/A, better or worse by the figure's sense", () => {
    const a: Row[] = [tcp('copy', 100, 90, 110), tcp('loan', 200, 190, 210)];
    const b: Row[] = [tcp('copy', 150, 140, 160), tcp('loan', 190, 185, 200)];
    const lines = compareRows(a, b);
    const copy = lines.find((l) => l.mode === 'copy' && l.name === 'MB/s')!;
    expect(copy).toMatchObject({ suite: 'tcp', size: 65536, ratio: 1.5, change: 'better' });
    expect(copy.a?.value).toBe(100);
    expect(copy.b?.value).toBe(150);
    expect(lines.find((l) => l.mode === 'loan')).toMatchObject({ ratio: 0.95, change: null });
  });

  it('calls lower latency and lower ns/page better', () => {
    const s = sampleResults();
    const a = buildRows(s.measurements, s.autoThreshold, s.soak);
    const faster = s.measurements.map((m) =>
      m.suite === 'latency'
        ? { ...m, latencies: m.latencies!.map((x) => x / 2) }
        : m.suite === 'loan-cost'
          ? { ...m, opsPerSec: m.opsPerSec * 2 }
          : m,
    );
    const b = buildRows(faster, s.autoThreshold, s.soak);
    const lines = compareRows(a, b);
    const p50 = lines.find((l) => l.suite === 'latency' && l.mode === 'copy' && l.name === 'p50 µs')!;
    expect(p50.ratio).toBeCloseTo(0.5);
    expect(p50.change).toBe('better');
    const ns = lines.find((l) => l.suite === 'loan-cost' && l.mode === 'copy' && l.name === 'ns/page')!;
    expect(ns.ratio).toBeCloseTo(0.5);
    expect(ns.change).toBe('better');
  });

  it('compares per-round ratios too, and lists figures only one side has', () => {
    const a: Row[] = [
      { ...tcp('loan', 200, 190, 210), vsCopy: { median: 2, min: 1.9, max: 2.1 } },
      tcp('raw', 1, 1, 1),
    ];
    const b: Row[] = [
      { ...tcp('loan', 200, 190, 210), vsCopy: { median: 1.5, min: 1.4, max: 1.6 } },
      tcp('auto', 1, 1, 1),
    ];
    const lines = compareRows(a, b);
    expect(lines.find((l) => l.name === 'loan/copy')).toMatchObject({ ratio: 0.75, change: 'worse' });
    expect(lines.find((l) => l.mode === 'auto')).toMatchObject({ a: null });
    expect(lines.find((l) => l.mode === 'raw')).toMatchObject({ b: null });
    expect(Number.isNaN(lines.find((l) => l.mode === 'raw')!.ratio)).toBe(true);
  });

  it('has a figure for every row kind but the crossover', () => {
    const s = sampleResults();
    const rows = buildRows(s.measurements, s.autoThreshold, s.soak);
    for (const r of rows) {
      const fs = figures(r);
      if (r.suite === 'crossover') expect(fs).toEqual([]);
      else expect(fs.length, r.suite).toBeGreaterThan(0);
      for (const x of fs) expect(Number.isFinite(x.value), `${r.suite} ${x.name}`).toBe(true);
    }
  });
});

describe('renderCompare', () => {
  it('names both runs, states the rule, prints a line per figure and counts the changes', () => {
    const a: Row[] = [tcp('copy', 100, 90, 110)];
    const b: Row[] = [tcp('copy', 150, 140, 160)];
    const text = renderCompare(
      { file: 'a.json', meta: null, rows: a },
      { file: 'b.json', meta: null, rows: b },
    );
    expect(text).toContain('A = a.json');
    expect(text).toContain('B = b.json');
    expect(text).toMatch(/beyond both runs' spread/);
    expect(text).toMatch(
      /tcp\s+64 KiB\s+copy\s+MB\/s\s+100 \(90\.0-110\)\s+150 \(140-160\)\s+1\.50x\s+better/,
    );
    expect(text).toContain('1 of 1 figures changed beyond the spread: 1 better, 0 worse');
  });

  it('tables only what both have, and counts by suite what only one has', () => {
    const a: Row[] = [tcp('copy', 100, 90, 110), tcp('raw', 300, 290, 310)];
    const b: Row[] = [tcp('copy', 101, 90, 110), { ...tcp('loan', 1, 1, 1), suite: 'echo' }];
    const text = renderCompare(
      { file: 'a.json', meta: null, rows: a },
      { file: 'b.json', meta: null, rows: b },
    );
    expect(text).not.toMatch(/^\s+tcp\s.*raw/m);
    expect(text).toContain('only in A, not compared: tcp (1) figures');
    expect(text).toContain('only in B, not compared: echo (1) figures');
    expect(text).toContain('0 of 1 figures changed beyond the spread');
  });

  it('compares an old bare-array latest.json (schema 0: rounded figures, no samples) with a record', () => {
    const old = [
      {
        suite: 'tcp',
        mode: 'copy',
        size: 65536,
        mbps: 100,
        opsPerSec: 1,
        mbpsMin: 90,
        mbpsMax: 110,
        rounds: 7,
      },
    ];
    const lines = compareRows(old as unknown as Row[], [tcp('copy', 150, 140, 160)]);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ ratio: 1.5, change: 'better' });
  });
});
