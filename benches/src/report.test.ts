import { describe, expect, it } from 'vitest';
import { buildRows, evaluateTargets, fmtRatio, type RunResults, renderReport, table } from './report.js';
import { sampleResults } from './sample-results.js';

describe('latest.json rows', () => {
  const rows = buildRows(sampleResults());

  it('has { suite, mode, size, mbps, opsPerSec } for every throughput cell', () => {
    const tp = rows.filter((r) => r.suite === 'null-sink' || r.suite === 'tcp' || r.suite === 'echo');
    expect(tp.length).toBe(2 * 3 + 2 * 4 + 2 * 3);
    for (const r of tp) {
      expect(['copy', 'loan', 'auto', 'raw']).toContain(r.mode);
      expect(Number.isInteger(r.size) && (r.size as number) > 0).toBe(true);
      expect(typeof (r as { mbps: unknown }).mbps).toBe('number');
      expect(typeof (r as { opsPerSec: unknown }).opsPerSec).toBe('number');
    }
  });

  it('gives medians over rounds with their spread, and per-round ratios', () => {
    const loan = rows.find((r) => r.suite === 'null-sink' && r.mode === 'loan' && r.size === 4096);
    expect(loan).toMatchObject({ mbps: 300, mbpsMin: 200, mbpsMax: 400, rounds: 3 });
    expect(loan).toMatchObject({ vsCopy: { median: 3, min: 2, max: 4 } });
    const tcpLoan = rows.find((r) => r.suite === 'tcp' && r.mode === 'loan' && r.size === 4096);
    expect(tcpLoan).toHaveProperty('vsRaw');
    const copy = rows.find((r) => r.suite === 'tcp' && r.mode === 'copy');
    expect(copy).not.toHaveProperty('vsCopy');
  });

  it('has loan-cost rows in ns per page, one crossover row and one soak row', () => {
    const lc = rows.filter((r) => r.suite === 'loan-cost');
    expect(lc.map((r) => [r.mode, r.size])).toEqual([
      ['loan', 16],
      ['copy', 16],
      ['loan', 256],
      ['copy', 256],
    ]);
    for (const r of lc) expect(typeof (r as { nsPerPage: unknown }).nsPerPage).toBe('number');
    expect(rows.filter((r) => r.suite === 'crossover')).toEqual([
      { suite: 'crossover', mode: 'loan', size: 4096, atMost: true, autoThreshold: 8192 },
    ]);
    const soak = rows.find((r) => r.suite === 'soak');
    expect(soak).toMatchObject({ mode: 'loan', size: 4096, sends: 1000, pagesLeaked: 0, heapGrowthPct: 2 });
    for (const k of ['heapStartMiB', 'heapEndMiB', 'heapGrowthPct', 'pagesLeaked'])
      expect(soak).toHaveProperty(k);
  });

  it('survives JSON', () => {
    expect(JSON.parse(JSON.stringify(rows))).toEqual(rows);
  });
});

describe('targets', () => {
  it('marks each target met, missed, or not measured', () => {
    const ts = evaluateTargets(sampleResults());
    const by = (name: string) => ts.find((t) => t.name.startsWith(name))!;
    expect(by('null-sink loan/copy at 4 KiB').met).toBe(true);
    expect(by('null-sink loan/copy at 64 KiB').met).toBeNull();
    expect(by('loan+unloan ns/page at 16').met).toBe(true);
    expect(by('loan+unloan ns/page at 256').met).toBe(false);
    expect(by('tcp loan >= copy').met).toBe(true);
    expect(by('soak heap flat').met).toBe(true);
    expect(by('soak pages all free').met).toBe(true);
  });

  it('judges a leak as missed', () => {
    const r = sampleResults();
    r.soak!.pagesLeaked = 3;
    expect(evaluateTargets(r).find((t) => t.name === 'soak pages all free')!.met).toBe(false);
  });
});

describe('terminal report', () => {
  it('has a table per suite, the ratios, the checks and the targets', () => {
    const text = renderReport(sampleResults());
    for (const s of ['null-sink:', 'loan-cost:', 'tcp:', 'echo:', 'crossover:', 'soak:', 'targets:'])
      expect(text).toContain(s);
    expect(text).toContain('loan/copy');
    expect(text).toContain('loan/raw');
    expect(text).toMatch(/MISSED/);
    expect(text).toMatch(/\bmet\b/);
  });

  it('says when a suite did not run, and lists errors', () => {
    const r: RunResults = { ...sampleResults(), measurements: [], errors: ['tcp: boom'] };
    const text = renderReport(r);
    expect(text).toContain('(not run)');
    expect(text).toContain('tcp: boom');
  });

  it('formats ratios as median (min-max) and pads columns', () => {
    expect(fmtRatio({ median: 1.5, min: 1.25, max: 2, n: 3 })).toBe('1.50x (1.25-2.00)');
    expect(fmtRatio({ median: Number.NaN, min: Number.NaN, max: Number.NaN, n: 0 })).toBe('-');
    expect(table(['a', 'bb'], [['xxx', '1']]).split('\n')).toEqual(['  a    bb', '  xxx   1']);
  });
});

describe('targets at the boundary', () => {
  /* withLoanNs: the sample run with loan+unloan at 16 pages costing `ns` per page in every round */
  function withLoanNs(ns: number): RunResults {
    const r = sampleResults();
    r.measurements = r.measurements.map((m) =>
      m.suite === 'loan-cost' && m.mode === 'loan' && m.size === 16
        ? { ...m, opsPerSec: 1e9 / (ns * 16) }
        : m,
    );
    return r;
  }
  const at16 = (r: RunResults) =>
    evaluateTargets(r).find((t) => t.name === 'loan+unloan ns/page at 16 pages')!;

  it('a figure just over a <= goal is missed and reads 40.04, not 40.0', () => {
    const t = at16(withLoanNs(40.04));
    expect(t.met).toBe(false);
    expect(t.figure).toMatch(/^40\.04 ns/);
  });

  it('a figure just under is met and reads 39.96; exactly on it is met', () => {
    expect(at16(withLoanNs(39.96))).toMatchObject({ met: true, figure: expect.stringMatching(/^39\.96 ns/) });
    expect(at16(withLoanNs(40))).toMatchObject({ met: true, figure: expect.stringMatching(/^40\.0 ns/) });
  });

  it('a ratio just under its goal shows the digits that put it there', () => {
    expect(fmtRatio({ median: 1.4996, min: 1.2, max: 1.6, n: 3 }, 1.5)).toBe('1.4996x (1.20-1.60)');
    expect(fmtRatio({ median: 1.52, min: 1.2, max: 1.6, n: 3 }, 1.5)).toBe('1.52x (1.20-1.60)');
  });

  it('latest.json keeps the unrounded figure', () => {
    const row = buildRows(withLoanNs(40.04)).find(
      (x) => x.suite === 'loan-cost' && x.mode === 'loan' && x.size === 16,
    );
    expect((row as { nsPerPage: number }).nsPerPage).toBeCloseTo(40.04, 10);
  });
});
