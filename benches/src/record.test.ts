import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import {
  type BenchRecord,
  gitState,
  isComplete,
  makeMeta,
  type RunFacts,
  readRecord,
  reserveName,
  SCHEMA,
  stamp,
  toCsv,
  writeRecord,
} from './record.js';
import { buildRows } from './rows.js';
import { sampleResults } from './sample-results.js';
import { SUITE_NAMES } from './suites.js';

const dirs: string[] = [];
const tmp = () => {
  const d = mkdtempSync(join(tmpdir(), 'bench-record-'));
  dirs.push(d);
  return d;
};
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

const facts = (over: Partial<RunFacts> = {}): RunFacts => ({
  date: '2025-01-30T03:23:05.123Z',
  quick: true,
  rounds: 3,
  only: [...SUITE_NAMES],
  argv: ['--quick'],
  peer: null,
  errors: [],
  seconds: 42,
  ...over,
});

function record(over: Partial<RunFacts> = {}): BenchRecord {
  const s = sampleResults();
  return {
    schema: SCHEMA,
    meta: makeMeta(facts(over), { commit: 'abc1234567', dirty: false }),
    rows: buildRows(s.measurements, s.autoThreshold, s.soak),
  };
}

describe('the record', () => {
  it('is { schema, meta, rows } with every meta field the issue names, typed', () => {
    const r = record();
    expect(r.schema).toBe(1);
    const m = r.meta;
    for (const k of ['node', 'v8', 'cpu', 'os', 'commit', 'date'] as const)
      expect(typeof m[k], k).toBe('string');
    for (const k of ['cores', 'memory', 'rounds', 'seconds'] as const) expect(typeof m[k], k).toBe('number');
    for (const k of ['quick', 'complete', 'dirty'] as const) expect(typeof m[k], k).toBe('boolean');
    expect(m.node).toBe(process.version);
    expect(m.v8).toBe(process.versions.v8);
    expect(m.cores).toBeGreaterThan(0);
    expect(m.only).toEqual([...SUITE_NAMES]);
    expect(m.argv).toEqual(['--quick']);
    expect(m.peer).toBeNull();
    expect(JSON.parse(JSON.stringify(r))).toEqual(r);
  });

  it('is complete only with every suite, on loopback, and no error', () => {
    expect(isComplete(facts())).toBe(true);
    expect(isComplete(facts({ only: ['tcp', 'echo'] }))).toBe(false);
    expect(isComplete(facts({ errors: ['tcp: boom'] }))).toBe(false);
    const peer = { address: '10.0.0.2:9400', node: 'v20', cpu: 'x', cores: 2, os: 'Linux' };
    expect(isComplete(facts({ peer }))).toBe(false);
    expect(record({ only: ['soak'] }).meta.complete).toBe(false);
  });

  it('knows the commit of this checkout, and says unknown outside one', () => {
    const here = gitState(fileURLToPath(new URL('.', import.meta.url)));
    expect(here.commit).toMatch(/^[0-9a-f]{7,}$/);
    expect(typeof here.dirty).toBe('boolean');
    expect(gitState(tmp())).toEqual({ commit: 'unknown', dirty: null });
  });

  it('is named by a UTC stamp that sorts by time and the commit, never reusing a name', () => {
    expect(stamp(new Date('2025-01-30T03:23:05.123Z'))).toBe('20250130T032305Z');
    const d = tmp();
    const when = new Date('2025-01-30T03:23:05Z');
    const a = reserveName(d, when, 'abc123');
    expect(a).toBe('20250130T032305Z-abc123');
    writeFileSync(join(d, `${a}.json`), '{}');
    expect(reserveName(d, when, 'abc123')).toBe('20250130T032305Z-abc123-2');
  });
});

describe('CSV', () => {
  it('has suite, mode, size first, then every field any row has, nested ones dotted, unrounded', () => {
    const csv = toCsv([
      { suite: 'tcp', mode: 'loan', size: 4096, mbps: 100 / 3, vsCopy: { median: 1.5, min: 1, max: 2 } },
      { suite: 'soak', mode: 'loan', size: 4096, sends: 10 },
    ]);
    const lines = csv.split('\r\n');
    expect(lines[0]).toBe('suite,mode,size,mbps,vsCopy.median,vsCopy.min,vsCopy.max,sends');
    expect(lines[1]).toBe(`tcp,loan,4096,${100 / 3},1.5,1,2,`);
    expect(lines[2]).toBe('soak,loan,4096,,,,,10');
    expect(lines[3]).toBe('');
  });

  it('quotes what needs quoting and leaves null, NaN and missing fields empty', () => {
    const csv = toCsv([
      { suite: 'x', mode: 'a,"b"', size: null, note: 'two\nlines', v: Number.NaN, ok: true },
    ]);
    expect(csv.split('\r\n')[1]).toBe('x,"a,""b""",,"two\nlines",,true');
  });

  it('has a line per row of a real run', () => {
    const r = record();
    expect(toCsv(r.rows).trimEnd().split('\r\n')).toHaveLength(r.rows.length + 1);
  });
});

describe('writing records: a partial run never erases another run', () => {
  /* seed: a results directory as an earlier complete run left it */
  function seed(): { dir: string; before: Map<string, string> } {
    const dir = tmp();
    const old = record();
    writeRecord(dir, '20240101T000000Z-old', old, '<svg>old</svg>');
    writeFileSync(join(dir, 'benny-note.txt'), 'someone else');
    const before = new Map(readdirSync(dir).map((f) => [f, readFileSync(join(dir, f), 'utf8')]));
    return { dir, before };
  }

  it('a run of some suites writes its own record, csv and chart, and leaves every other file as it was', () => {
    const { dir, before } = seed();
    const rec = record({ only: ['soak'] });
    const written = writeRecord(dir, '20250130T032305Z-new', rec, '<svg>new</svg>');
    expect(written.map((f) => f.slice(dir.length + 1)).sort()).toEqual([
      '20250130T032305Z-new.csv',
      '20250130T032305Z-new.json',
      '20250130T032305Z-new.svg',
    ]);
    for (const [f, text] of before) expect(readFileSync(join(dir, f), 'utf8'), f).toBe(text);
    expect(JSON.parse(readFileSync(join(dir, 'latest.json'), 'utf8')).meta.complete).toBe(true);
    expect(readFileSync(join(dir, 'chart.svg'), 'utf8')).toBe('<svg>old</svg>');
  });

  it('a complete run writes latest.json, latest.csv and chart.svg as copies of its own', () => {
    const { dir } = seed();
    const rec = record();
    writeRecord(dir, '20250130T032305Z-new', rec, '<svg>new</svg>');
    const latest = readFileSync(join(dir, 'latest.json'), 'utf8');
    expect(latest).toBe(readFileSync(join(dir, '20250130T032305Z-new.json'), 'utf8'));
    expect(readFileSync(join(dir, 'latest.csv'), 'utf8')).toBe(toCsv(rec.rows));
    expect(readFileSync(join(dir, 'chart.svg'), 'utf8')).toBe('<svg>new</svg>');
    expect(readFileSync(join(dir, '20240101T000000Z-old.json'), 'utf8')).toContain('"schema": 1');
    expect(readdirSync(dir).filter((f) => f.endsWith('.tmp'))).toEqual([]);
  });
});

describe('reading records', () => {
  it('reads a record back as written', () => {
    const dir = tmp();
    const rec = record();
    writeRecord(dir, 'r', rec, '');
    expect(readRecord(join(dir, 'r.json'))).toEqual(rec);
  });

  it('reads an old bare-array latest.json as schema 0 with no meta', () => {
    const f = join(tmp(), 'old.json');
    writeFileSync(f, JSON.stringify([{ suite: 'tcp', mode: 'loan', size: 4096, mbps: 1 }]));
    expect(readRecord(f)).toMatchObject({ schema: 0, meta: null, rows: [{ suite: 'tcp' }] });
  });

  it('refuses, naming the file, what is missing, not JSON, not a record, or newer', () => {
    const d = tmp();
    const put = (name: string, text: string) => {
      writeFileSync(join(d, name), text);
      return join(d, name);
    };
    expect(() => readRecord(join(d, 'none.json'))).toThrow(/none\.json: ENOENT/);
    expect(() => readRecord(put('junk.json', 'not json'))).toThrow(/junk\.json: not JSON/);
    expect(() => readRecord(put('obj.json', '{"rows": 3}'))).toThrow(/obj\.json: not a bench record/);
    expect(() => readRecord(put('new.json', '{"schema": 99, "rows": []}'))).toThrow(/schema 99 is newer/);
  });
});
