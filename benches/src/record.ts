/*
 * record.ts: a run as a record you can keep -- benches/results/<UTC stamp>-<commit>.json, with a CSV
 * and a chart beside it, and latest.json for the last complete run.
 *
 * A record is `{ schema, meta, rows }`: the schema number (SCHEMA, bumped when a field changes
 * meaning), what ran where (meta: the machine, Node, the commit and whether the tree was dirty, the
 * date, quick or full, the suites, the command line, the peer if any), and the rows (rows.ts),
 * unrounded. Every run writes its own record; no run ever rewrites or deletes another's. latest.json
 * (and latest.csv, chart.svg) are copies of the last *complete* run's: every suite, on loopback, none
 * failed, not stopped by the watchdog -- so a run of some suites (--only), against a peer, or that
 * broke off leaves them as they were, and they always hold every suite's figures from one run.
 *
 * benny's own JSON (every sample) goes under benny/<the record's name>/, one directory per run.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import type { Row } from './rows.js';
import type { SinkMachine } from './sink-client.js';
import { SUITE_NAMES, type SuiteName } from './suites.js';

/** the record format's version: 1 is `{ schema, meta, rows }`; 0 was latest.json's bare array of rows */
export const SCHEMA = 1;

export interface Meta {
  /** process.version and the V8 inside it */
  node: string;
  v8: string;
  /** the first CPU's model, logical cores available, total memory in bytes */
  cpu: string;
  cores: number;
  memory: number;
  /** os.type() release arch, e.g. "Linux 6.1.0 x64" */
  os: string;
  /** git's short HEAD ("unknown" outside a git checkout), and whether the tree had changes */
  commit: string;
  dirty: boolean | null;
  /** when the run started, ISO 8601 UTC */
  date: string;
  quick: boolean;
  rounds: number;
  /** the suites this run was asked for */
  only: SuiteName[];
  /** the command line after the script */
  argv: string[];
  /** --peer: the sink's control address and its machine; null on loopback */
  peer: (SinkMachine & { address: string }) | null;
  /** whether this run counts as complete (and so updated latest.json) */
  complete: boolean;
  /** what failed, one line each */
  errors: string[];
  /** how long the run took */
  seconds: number;
}

export interface BenchRecord {
  schema: number;
  meta: Meta;
  rows: Row[];
}

/** machine: this machine and its Node, for a record's meta and the sink's hello */
export function machine(): SinkMachine {
  return {
    node: process.version,
    cpu: os.cpus()[0]?.model ?? 'unknown',
    cores: os.availableParallelism(),
    os: `${os.type()} ${os.release()} ${os.arch()}`,
  };
}

/**
 * gitState: the short commit of the checkout holding `dir`, and whether its tree has changes.
 * => { commit: 'unknown', dirty: null } where git or the checkout isn't there
 */
export function gitState(dir: string): { commit: string; dirty: boolean | null } {
  const git = (...args: string[]) =>
    execFileSync('git', ['-C', dir, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  try {
    const commit = git('rev-parse', '--short=10', 'HEAD').trim();
    return { commit, dirty: git('status', '--porcelain').trim() !== '' };
  } catch {
    return { commit: 'unknown', dirty: null };
  }
}

/** what a run says of itself; makeMeta adds the machine, the checkout and `complete` */
export type RunFacts = Pick<
  Meta,
  'date' | 'quick' | 'rounds' | 'only' | 'argv' | 'peer' | 'errors' | 'seconds'
>;

/**
 * makeMeta: a record's meta: this machine and Node, the checkout, the run's facts, and whether the run
 * is complete (isComplete).
 * => git: gitState() of the checkout
 */
export function makeMeta(run: RunFacts, git: { commit: string; dirty: boolean | null }): Meta {
  const { node, cpu, cores, os: osName } = machine();
  return {
    node,
    v8: process.versions.v8,
    cpu,
    cores,
    memory: os.totalmem(),
    os: osName,
    commit: git.commit,
    dirty: git.dirty,
    date: run.date,
    quick: run.quick,
    rounds: run.rounds,
    only: run.only,
    argv: run.argv,
    peer: run.peer,
    complete: isComplete(run),
    errors: run.errors,
    seconds: run.seconds,
  };
}

/**
 * isComplete: whether a run may stand as latest.json: every suite, on loopback, no error.
 */
export function isComplete(m: Pick<Meta, 'only' | 'peer' | 'errors'>): boolean {
  return m.peer === null && m.errors.length === 0 && SUITE_NAMES.every((s) => m.only.includes(s));
}

/**
 * stamp: a UTC date as a file-name stamp that sorts by time, e.g. 20250130T032305Z.
 */
export function stamp(d: Date): string {
  return d
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d+Z$/, 'Z');
}

/**
 * reserveName: the name of a new record in `dir`: <stamp>-<commit>, or with -2, -3, ... when a
 * record (or its benny directory) of that name is already there.
 * => creates dir if needed; nothing else is written
 */
export function reserveName(dir: string, date: Date, commit: string): string {
  mkdirSync(dir, { recursive: true });
  const base = `${stamp(date)}-${commit.replace(/[^\w.-]/g, '_')}`;
  const taken = (n: string) => existsSync(join(dir, `${n}.json`)) || existsSync(join(dir, 'benny', n));
  let name = base;
  for (let i = 2; taken(name); i++) name = `${base}-${i}`;
  return name;
}

function csvCell(v: unknown): string {
  if (v === null || v === undefined) return '';
  if (typeof v === 'number') return Number.isFinite(v) ? String(v) : '';
  const s = String(v);
  return /[",\n\r]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

/* flatten: a row's fields, nested objects as dotted names (vsCopy.median) */
function flatten(row: object, prefix = ''): [string, unknown][] {
  return Object.entries(row).flatMap(([k, v]) =>
    v !== null && typeof v === 'object' && !Array.isArray(v)
      ? flatten(v as object, `${prefix}${k}.`)
      : [[`${prefix}${k}`, v] as [string, unknown]],
  );
}

/**
 * toCsv: rows as CSV (RFC 4180): a header of every field any row has -- suite, mode, size first,
 * then in the order first met, nested ones dotted (vsCopy.median) -- and a line per row, a field the
 * row lacks left empty; numbers unrounded.
 */
export function toCsv(rows: readonly object[]): string {
  const flat = rows.map((r) => new Map(flatten(r)));
  const head = ['suite', 'mode', 'size'];
  for (const f of flat) for (const k of f.keys()) if (!head.includes(k)) head.push(k);
  const lines = [head.join(','), ...flat.map((f) => head.map((k) => csvCell(f.get(k))).join(','))];
  return `${lines.join('\r\n')}\r\n`;
}

/* writeAtomic: write via a temporary file and a rename, so a reader never sees half a file */
function writeAtomic(path: string, text: string): void {
  writeFileSync(`${path}.tmp`, text);
  renameSync(`${path}.tmp`, path);
}

/**
 * writeRecord: a run's files in `dir`: <name>.json, <name>.csv and <name>.svg, and -- only when the
 * record's meta says the run is complete -- latest.json, latest.csv and chart.svg.
 * => never touches any other file; returns the paths written
 */
export function writeRecord(dir: string, name: string, rec: BenchRecord, chartSvg: string): string[] {
  mkdirSync(dir, { recursive: true });
  const json = `${JSON.stringify(rec, null, 2)}\n`;
  const csv = toCsv(rec.rows);
  const files: [string, string][] = [
    [`${name}.json`, json],
    [`${name}.csv`, csv],
    [`${name}.svg`, chartSvg],
  ];
  if (rec.meta.complete) files.push(['latest.json', json], ['latest.csv', csv], ['chart.svg', chartSvg]);
  for (const [f, text] of files) writeAtomic(join(dir, f), text);
  return files.map(([f]) => join(dir, f));
}

/**
 * readRecord: a record from a file, checked for its shape.
 * => a schema 1 record as is; a bare array of rows (latest.json before records, schema 0) as a record
 *    with schema 0 and meta null
 * => throws an Error naming the file if it can't be read or isn't a record
 */
export function readRecord(path: string): { schema: number; meta: Meta | null; rows: Row[] } {
  let data: unknown;
  try {
    data = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    throw new Error(`${path}: ${err instanceof SyntaxError ? 'not JSON' : (err as Error).message}`);
  }
  if (Array.isArray(data)) return { schema: 0, meta: null, rows: data as Row[] };
  const rec = data as Partial<BenchRecord> | null;
  if (rec === null || typeof rec !== 'object' || typeof rec.schema !== 'number' || !Array.isArray(rec.rows))
    throw new Error(`${path}: not a bench record (no schema and rows)`);
  if (rec.schema > SCHEMA)
    throw new Error(`${path}: schema ${rec.schema} is newer than this bench's ${SCHEMA}`);
  return { schema: rec.schema, meta: (rec.meta ?? null) as Meta | null, rows: rec.rows };
}
