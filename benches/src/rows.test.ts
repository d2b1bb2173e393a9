import { describe, expect, it } from 'vitest';
import { buildRows, type LatencyRow, type ThroughputRow } from './rows.js';
import { sampleResults } from './sample-results.js';
import type { Measurement } from './stats.js';

const sample = sampleResults();
const rows = buildRows(sample.measurements, sample.autoThreshold, sample.soak);
const find = (suite: string, mode: string, size: number) =>
  rows.find((r) => r.suite === suite && r.mode === mode && r.size === size);

describe('record rows', () => {
  it('has a row with { suite, mode, size, mbps, opsPerSec } for every throughput cell', () => {
    const tp = rows.filter((r) => r.suite === 'null-sink' || r.suite === 'tcp' || r.suite === 'echo');
    expect(tp.length).toBe(2 * 3 + 2 * 4 + 2 * 3);
    for (const r of tp as ThroughputRow[]) {
      expect(['copy', 'loan', 'auto', 'raw']).toContain(r.mode);
      expect(Number.isInteger(r.size) && r.size > 0).toBe(true);
      expect(typeof r.mbps).toBe('number');
      expect(typeof r.opsPerSec).toBe('number');
    }
  });

  it('gives medians over rounds with their spread, rounds, samples, margin, and per-round ratios', () => {
    expect(find('null-sink', 'loan', 4096)).toMatchObject({
      mbps: 300,
      mbpsMin: 200,
      mbpsMax: 400,
      rounds: 3,
      samples: 12,
      rme: 10,
      vsCopy: { median: 3, min: 2, max: 4 },
    });
    expect(find('tcp', 'loan', 4096)).toHaveProperty('vsRaw');
    expect(find('tcp', 'copy', 4096)).not.toHaveProperty('vsCopy');
    expect(find('tcp', 'raw', 4096)).not.toHaveProperty('vsRaw');
    expect(find('null-sink', 'copy', 4096)).not.toHaveProperty('vsRaw');
  });

  it('keeps every figure unrounded', () => {
    const ms: Measurement[] = [0, 1, 2].map((round) => ({
      suite: 'tcp',
      mode: 'copy',
      size: 4096,
      round,
      mbps: 100 / 3,
      opsPerSec: 1 / 3,
      samples: 4,
      rme: 12.3456789,
    }));
    const r = buildRows(ms, null, null)[0] as ThroughputRow;
    expect(r.mbps).toBe(100 / 3);
    expect(r.opsPerSec).toBe(1 / 3);
    expect(r.rme).toBe(12.3456789);
  });

  it('has loan-cost rows in ns per page, one crossover row and one soak row', () => {
    const lc = rows.filter((r) => r.suite === 'loan-cost');
    expect(lc.map((r) => [r.mode, r.size])).toEqual([
      ['loan', 16],
      ['copy', 16],
      ['loan', 256],
      ['copy', 256],
    ]);
    expect(find('loan-cost', 'loan', 16)).toMatchObject({
      nsPerPage: 1e9 / (1.6e6 * 16),
      rounds: 3,
      samples: 18,
    });
    expect(rows.filter((r) => r.suite === 'crossover')).toEqual([
      { suite: 'crossover', mode: 'loan', size: 4096, atMost: true, autoThreshold: 8192 },
    ]);
    expect(rows.find((r) => r.suite === 'soak')).toMatchObject({
      mode: 'loan',
      size: 4096,
      sends: 1000,
      pagesLeaked: 0,
      heapGrowthPct: 2,
    });
  });

  it('has no crossover row when the null-sink suite did not run', () => {
    const ms = sample.measurements.filter((m) => m.suite !== 'null-sink');
    expect(buildRows(ms, null, null).some((r) => r.suite === 'crossover')).toBe(false);
  });

  it('gives latency percentiles over every round trip pooled, and the per-round spread', () => {
    /* copy at 64 B: rounds of 100 round trips, base..base+99 µs, base 100, 101, 102 */
    const copy = find('latency', 'copy', 64) as LatencyRow;
    expect(copy.roundTrips).toBe(300);
    expect(copy.rounds).toBe(3);
    const pooled = [0, 1, 2]
      .flatMap((r) => Array.from({ length: 100 }, (_, i) => 100 + r + i))
      .sort((a, b) => a - b);
    expect(copy.p50Us).toBe(pooled[149]);
    expect(copy.p99Us).toBe(pooled[296]);
    expect(copy.p999Us).toBe(pooled[299]);
    expect(copy.maxUs).toBe(201);
    expect([copy.p50UsMin, copy.p50UsMax]).toEqual([149, 151]);
    expect([copy.p99UsMin, copy.p99UsMax]).toEqual([198, 200]);
  });

  it('takes latency ratios per round on the p50', () => {
    /* loan p50 per round: 129, 130, 131; copy: 149, 150, 151; raw: 99 */
    const loan = find('latency', 'loan', 64) as LatencyRow;
    expect(loan.vsCopy?.median).toBeCloseTo(130 / 150);
    expect(loan.vsRaw?.median).toBeCloseTo(130 / 99);
    expect(loan.vsRaw?.min).toBeCloseTo(129 / 99);
  });

  it('survives JSON', () => {
    expect(JSON.parse(JSON.stringify(rows))).toEqual(rows);
  });
});
