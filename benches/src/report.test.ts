import { describe, expect, it } from 'vitest';
import { fmtRatio, table } from './format.js';
import { NOTE, type RunResults, renderReport, suiteSection } from './report.js';
import { buildRows } from './rows.js';
import { sampleResults } from './sample-results.js';

describe('terminal report', () => {
  const text = renderReport(sampleResults());

  it('has a table per suite, the crossover, the checks and the targets', () => {
    for (const s of [
      'null-sink:',
      'loan-cost:',
      'tcp:',
      'echo:',
      'latency:',
      'crossover:',
      'soak:',
      'targets:',
    ])
      expect(text).toContain(s);
    expect(text).toMatch(/MISSED/);
    expect(text).toMatch(/\bmet\b/);
  });

  it('explains median-of-ratios against ratio-of-medians in the note', () => {
    expect(text).toContain(NOTE);
    expect(NOTE).toMatch(/medians of ratios taken within\s+each round/);
    expect(NOTE).toMatch(/differ from the ratio of the two medians/);
  });

  it('shows on each row its figure, spread, margin, sample count and ratios', () => {
    const s = sampleResults();
    const rows = buildRows(s.measurements, s.autoThreshold, s.soak);
    const lines = suiteSection(rows, 'null-sink', '').split('\n');
    expect(lines[1].trim().split(/\s{2,}/)).toEqual([
      'size',
      'mode',
      'MB/s',
      'min-max',
      '±rme',
      'n',
      'vs copy',
    ]);
    /* 4 KiB loan: rounds at 200, 300, 400 MB/s against copy at 100; 4 samples a round; margin 10% */
    const loan = lines.find((l) => /^\s+loan\s/.test(l))!;
    expect(loan.trim().split(/\s{2,}/)).toEqual([
      'loan',
      '300',
      '200-400',
      '±10%',
      '12',
      '3.00x (2.00-4.00)',
    ]);
    expect(lines[2]).toMatch(/^ {2}4 KiB\s+copy/);
  });

  it('tables latency as p50, p99, p99.9, max, the p50 spread, round trips, and p50 ratios', () => {
    const s = sampleResults();
    const rows = buildRows(s.measurements, s.autoThreshold, s.soak);
    const all = suiteSection(rows, 'latency', '127.0.0.1').split('\n');
    const lines = all.slice(all.findIndex((l) => /^\s+size\s+mode/.test(l)) - 1);
    expect(lines[1].trim().split(/\s{2,}/)).toEqual([
      'size',
      'mode',
      'p50',
      'p99',
      'p99.9',
      'max',
      'p50 min-max',
      'n',
      'p50 vs copy',
      'p50 vs raw',
    ]);
    expect(
      lines[2]
        .trim()
        .split(/\s{2,}/)
        .slice(0, 8),
    ).toEqual(['64 B', 'copy', '150', '199', '201', '201', '149-151', '300']);
  });

  it('says when a suite did not run, and lists errors', () => {
    const r: RunResults = { ...sampleResults(), measurements: [], soak: null, errors: ['tcp: boom'] };
    const out = renderReport(r);
    expect(out).toContain('(not run)');
    expect(out).toContain('tcp: boom');
    expect(out).not.toContain('crossover:');
  });

  it('formats ratios as median (min-max) and pads columns', () => {
    expect(fmtRatio({ median: 1.5, min: 1.25, max: 2, n: 3 })).toBe('1.50x (1.25-2.00)');
    expect(fmtRatio({ median: Number.NaN, min: Number.NaN, max: Number.NaN, n: 0 })).toBe('-');
    expect(table(['a', 'bb'], [['xxx', '1']]).split('\n')).toEqual(['  a    bb', '  xxx   1']);
  });

  it('says a mismatch when a server did not echo every byte', () => {
    const r = sampleResults();
    r.echoCheck!.loan.echoed = 19;
    expect(renderReport(r)).toContain('loan MISMATCH: 19/20');
  });
});
