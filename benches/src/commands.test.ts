/*
 * The command lines of `pnpm bench` and `pnpm sink`, run as a user runs them: in child processes,
 * through real files (a temporary results directory) and real TCP on 127.0.0.1. Every child is
 * killed at the end, whatever happens; nothing is written into benches/results.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { makeMeta, readRecord, SCHEMA, writeRecord } from './record.js';
import { buildRows } from './rows.js';
import { sampleResults } from './sample-results.js';
import { SUITE_NAMES } from './suites.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const SRC = fileURLToPath(new URL('.', import.meta.url));
const NODE_FLAGS = ['--conditions=@loanout/source', '--import', 'tsx'];

const children = new Set<ChildProcess>();
const dirs: string[] = [];
afterEach(() => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  children.clear();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

const tmp = () => {
  const d = mkdtempSync(join(tmpdir(), 'bench-cmd-'));
  dirs.push(d);
  return d;
};

interface Ran {
  code: number | null;
  stdout: string;
  stderr: string;
}

/* start: a command in a child process, its output collected */
function start(
  cmd: string,
  args: string[],
): { child: ChildProcess; out: { stdout: string; stderr: string } } {
  const child = spawn(cmd, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  const out = { stdout: '', stderr: '' };
  child.stdout!.on('data', (d) => {
    out.stdout += d;
  });
  child.stderr!.on('data', (d) => {
    out.stderr += d;
  });
  return { child, out };
}

/* run: a command to its end (killed after timeoutMs) */
function run(cmd: string, args: string[], timeoutMs = 20_000): Promise<Ran> {
  const { child, out } = start(cmd, args);
  const t = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  return new Promise((resolve) =>
    child.on('close', (code) => {
      clearTimeout(t);
      resolve({ code, ...out });
    }),
  );
}

const bench = (args: string[], timeoutMs?: number) =>
  run(process.execPath, ['--expose-gc', ...NODE_FLAGS, join(SRC, 'main.ts'), ...args], timeoutMs);
const sink = (args: string[]) => run(process.execPath, [...NODE_FLAGS, join(SRC, 'sink-main.ts'), ...args]);

function expectUsageError(r: Ran, cmd: string, message: RegExp): void {
  expect(r.code).toBe(2);
  expect(r.stdout).toBe('');
  const [first, ...rest] = r.stderr.split('\n');
  expect(first).toMatch(new RegExp(`^${cmd}: `));
  expect(first).toMatch(message);
  expect(rest.join('\n')).toContain(`usage: pnpm ${cmd}`);
  expect(r.stderr).not.toMatch(/\n\s+at /);
}

describe('pnpm bench and pnpm sink: --help and usage errors', () => {
  it('bench --help prints the usage and every flag on stdout, exit 0', async () => {
    const r = await bench(['--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^usage: pnpm bench/);
    for (const f of ['--quick', '--only', '--rounds', '--peer', '--out', '--compare', '--help'])
      expect(r.stdout).toContain(f);
    expect(r.stderr).toBe('');
  });

  it('bench: an unknown flag, a flag without its value, a bad value: one line, the usage, exit 2', async () => {
    const cases: [string[], RegExp][] = [
      [['--bogus'], /unknown argument --bogus/],
      [['--only'], /--only needs a value/],
      [['--peer', 'nowhere'], /--peer wants HOST:PORT/],
    ];
    const results = await Promise.all(cases.map(([args]) => bench(args)));
    for (const [i, r] of results.entries()) expectUsageError(r, 'bench', cases[i][1]);
  });

  it('sink --help, and its usage errors', async () => {
    const [help, port, flag] = await Promise.all([
      sink(['-h']),
      sink(['--port', '70000']),
      sink(['--hots', 'x']),
    ]);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/^usage: pnpm sink/);
    for (const f of ['--host', '--port', '--help']) expect(help.stdout).toContain(f);
    expectUsageError(port, 'sink', /--port must be 0\.\.65529/);
    expectUsageError(flag, 'sink', /unknown argument --hots/);
  });

  it('pnpm bench --help, end to end through pnpm, exits 0 without pnpm failure noise', async () => {
    const r = await run('pnpm', ['bench', '--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('usage: pnpm bench');
    expect(r.stdout + r.stderr).not.toMatch(/ERR_PNPM|ELIFECYCLE/);
  });
});

describe('pnpm bench --compare', () => {
  it('compares two records, exit 0; a file that is not a record is a usage error', async () => {
    const d = tmp();
    const s = sampleResults();
    const rows = buildRows(s.measurements, s.autoThreshold, s.soak);
    const facts = {
      date: new Date().toISOString(),
      quick: true,
      rounds: 3,
      only: [...SUITE_NAMES],
      argv: [],
      peer: null,
      errors: [],
      seconds: 1,
    };
    const meta = makeMeta(facts, { commit: 'abc', dirty: false });
    writeRecord(d, 'a', { schema: SCHEMA, meta, rows }, '');
    writeRecord(d, 'b', { schema: SCHEMA, meta, rows }, '');
    const ok = await bench(['--compare', join(d, 'a.json'), join(d, 'b.json')]);
    expect(ok.code).toBe(0);
    expect(ok.stdout).toContain(`A = ${join(d, 'a.json')}`);
    expect(ok.stdout).toMatch(/0 of \d+ figures changed beyond the spread/);
    const bad = await bench(['--compare', join(d, 'a.json'), join(d, 'missing.json')]);
    expectUsageError(bad, 'bench', /missing\.json: ENOENT/);
  });
});

describe('pnpm bench --only: a partial run keeps every other result', () => {
  it('writes its own record, csv and chart, and leaves latest.*, chart.svg, other records and benny files as they were', async () => {
    const d = tmp();
    const s = sampleResults();
    const rows = buildRows(s.measurements, s.autoThreshold, s.soak);
    const facts = {
      date: '2024-01-01T00:00:00.000Z',
      quick: false,
      rounds: 7,
      only: [...SUITE_NAMES],
      argv: [],
      peer: null,
      errors: [],
      seconds: 300,
    };
    writeRecord(
      d,
      '20240101T000000Z-old',
      { schema: SCHEMA, meta: makeMeta(facts, { commit: 'old', dirty: false }), rows },
      '<svg/>',
    );
    mkdirSync(join(d, 'benny', '20240101T000000Z-old'), { recursive: true });
    writeFileSync(join(d, 'benny', '20240101T000000Z-old', 'tcp-round1.json'), '{"old":true}');
    const snapshot = () =>
      new Map(
        [
          'latest.json',
          'latest.csv',
          'chart.svg',
          '20240101T000000Z-old.json',
          '20240101T000000Z-old.csv',
          'benny/20240101T000000Z-old/tcp-round1.json',
        ].map((f) => [f, readFileSync(join(d, f), 'utf8')]),
      );
    const before = snapshot();
    const r = await bench(['--quick', '--only', 'soak', '--out', d], 60_000);
    expect(r.code, r.stderr).toBe(0);
    expect(snapshot()).toEqual(before);
    expect(r.stdout).toMatch(/latest\.json left as it was: a run of some suites \(soak\)/);
    const mine = readdirSync(d).filter(
      (f) => f.endsWith('.json') && !f.startsWith('20240101') && f !== 'latest.json',
    );
    expect(mine).toHaveLength(1);
    const rec = readRecord(join(d, mine[0]));
    expect(rec.meta).toMatchObject({ complete: false, only: ['soak'], quick: true, peer: null });
    expect(rec.rows.map((x) => x.suite)).toEqual(['soak']);
    for (const ext of ['.csv', '.svg'])
      expect(existsSync(join(d, mine[0].replace('.json', ext))), ext).toBe(true);
  }, 70_000);
});

describe('two hosts, on one: pnpm sink + pnpm bench --peer', () => {
  it('runs the tcp suite against a sink started alone, records the peer, and the sink stops on Ctrl-C', async () => {
    const d = tmp();
    const { child: sinkProc, out } = start(process.execPath, [
      ...NODE_FLAGS,
      join(SRC, 'sink-main.ts'),
      '--port',
      '0',
    ]);
    const port = await new Promise<number>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`sink not ready: ${out.stdout}${out.stderr}`)), 20_000);
      sinkProc.stdout!.on('data', () => {
        const m = /^\s+(\d+)\s+control/m.exec(out.stdout);
        if (m !== null) {
          clearTimeout(t);
          resolve(Number(m[1]));
        }
      });
    });
    expect(out.stdout).toContain('loopback: this machine only');
    expect(out.stderr).not.toContain('NOT LOOPBACK');
    const r = await bench(
      ['--peer', `127.0.0.1:${port}`, '--quick', '--only', 'tcp', '--rounds', '1', '--out', d],
      60_000,
    );
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/the sink received ([\d,]+) of \1 bytes sent \(all\)/);
    expect(r.stdout).toContain(`the sink at 127.0.0.1:${port}`);
    expect(existsSync(join(d, 'latest.json'))).toBe(false);
    const file = readdirSync(d).find((f) => f.endsWith('.json'))!;
    const rec = readRecord(join(d, file));
    expect(rec.meta).toMatchObject({
      complete: false,
      only: ['tcp'],
      peer: { address: `127.0.0.1:${port}`, node: process.version },
    });
    expect(new Set(rec.rows.map((x) => `${x.suite}/${x.mode}`))).toEqual(
      new Set(['tcp/copy', 'tcp/loan', 'tcp/auto', 'tcp/raw']),
    );
    const exited = new Promise<number | null>((resolve) => sinkProc.on('close', (code) => resolve(code)));
    sinkProc.kill('SIGINT');
    expect(await exited).toBe(0);
    expect(out.stdout).toContain('sink: closed');
  }, 90_000);
});
