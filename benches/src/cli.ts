/*
 * cli.ts: the command lines of `pnpm bench` and `pnpm sink`.
 *
 * Both answer --help (or -h) with their usage on stdout, exit 0. A usage error -- an unknown argument,
 * a flag without its value, a bad value -- is a UsageError: the command prints its one-line message
 * and the usage on stderr and exits 2, no stack trace (exit 1 stays for a run that failed). Flags
 * take their value as `--flag value` or `--flag=value`; a bare `--`, as pnpm may pass one through
 * (`pnpm bench -- --quick`), is ignored.
 */
import { NET_SUITES, SUITE_NAMES, type SuiteName } from './suites.js';

/** a mistake on the command line: the message is one line naming the command */
export class UsageError extends Error {}

export const BENCH_USAGE = `usage: pnpm bench [--quick] [--only SUITES] [--rounds N] [--peer HOST:PORT] [--out DIR]
       pnpm bench --compare A.json B.json

  --quick            the quick run (under a minute): fewer sizes, rounds and samples, same output
  --only a,b,...     only these suites, of: ${SUITE_NAMES.join(', ')}
                     (such a run writes its own record; latest.json stays as it was)
  --rounds N         alternating rounds, 1..50 (default 7, quick 3)
  --peer HOST:PORT   run ${NET_SUITES.join(', ')} against a sink on another host (\`pnpm sink\` there;
                     PORT is its control port, [::1]:PORT for IPv6); default: a sink of our own on
                     127.0.0.1
  --out DIR          where results go (default benches/results)
  --compare A B      compare two records (results/*.json) row by row: both figures, B/A, and
                     whether the change is beyond both runs' spread (exit 0)
  --help, -h         this text
`;

export const SINK_USAGE = `usage: pnpm sink [--host HOST] [--port N]

  Runs the far side of the tcp, recv, echo and latency suites, for \`pnpm bench --peer THIS_HOST:N\` on
  another machine: a control port N, and data ports N+1 (discard), N+2 (echo-copy), N+3 (echo-loan),
  N+4 (echo-raw), N+5 (source), N+6 (echo-zerocopy). Ctrl-C stops it.

  --host HOST        the address to listen on (default 127.0.0.1: this machine only); 0.0.0.0 (or
                     this host's address) lets other hosts in, and the sink says so loudly
  --port N           the control port (default 9400); 0 puts every port on a free one
  --help, -h         this text
`;

export interface RunCommand {
  kind: 'run';
  quick: boolean;
  only: SuiteName[];
  rounds: number | null;
  peer: { host: string; port: number } | null;
  /** where results go; null: benches/results */
  out: string | null;
}

export type BenchCommand = { kind: 'help' } | { kind: 'compare'; a: string; b: string } | RunCommand;

export interface SinkCommand {
  kind: 'sink';
  host: string;
  port: number;
}

export const DEFAULT_SINK_PORT = 9400;

/**
 * scan: the flags of a command line, in order, each with its value.
 * => takes: the flags that take a value (2 for --compare) -> how many; others take none
 * => throws UsageError on an unknown argument or a missing value
 */
function scan(cmd: string, argv: readonly string[], takes: Record<string, number>, known: string[]) {
  const out: { flag: string; values: string[] }[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--') continue;
    const eq = arg.startsWith('--') ? arg.indexOf('=') : -1;
    const flag = eq > 0 ? arg.slice(0, eq) : arg;
    const n = takes[flag] ?? 0;
    if (!(flag in takes) && !known.includes(flag)) throw new UsageError(`${cmd}: unknown argument ${arg}`);
    const values = eq > 0 ? [arg.slice(eq + 1)] : [];
    while (values.length < n && i + 1 < argv.length && !argv[i + 1].startsWith('--')) values.push(argv[++i]);
    if (values.length < n || (eq > 0 && n === 0) || values.some((v) => v === ''))
      throw new UsageError(
        `${cmd}: ${flag} needs ${n === 0 ? 'no value' : n === 1 ? 'a value' : `${n} values`}`,
      );
    out.push({ flag, values });
  }
  return out;
}

const wantsHelp = (argv: readonly string[]) => argv.includes('--help') || argv.includes('-h');

/**
 * parseBench: the command line of `pnpm bench`.
 * => help if --help or -h is anywhere; compare with --compare (which takes no other flag); else a run
 * => throws UsageError on anything unknown, missing or out of range
 */
export function parseBench(argv: readonly string[]): BenchCommand {
  if (wantsHelp(argv)) return { kind: 'help' };
  const flags = scan('bench', argv, { '--only': 1, '--rounds': 1, '--peer': 1, '--out': 1, '--compare': 2 }, [
    '--quick',
  ]);
  const compare = flags.find((f) => f.flag === '--compare');
  if (compare !== undefined) {
    if (flags.length > 1) throw new UsageError('bench: --compare takes no other flag');
    return { kind: 'compare', a: compare.values[0], b: compare.values[1] };
  }
  const run: RunCommand = { kind: 'run', quick: false, only: [], rounds: null, peer: null, out: null };
  for (const { flag, values } of flags) {
    const v = values[0];
    if (flag === '--quick') run.quick = true;
    else if (flag === '--only') run.only = parseOnly(v);
    else if (flag === '--rounds') run.rounds = parseRounds(v);
    else if (flag === '--peer') run.peer = parsePeer(v);
    else if (flag === '--out') run.out = v;
  }
  if (run.only.length === 0) run.only = run.peer === null ? [...SUITE_NAMES] : [...NET_SUITES];
  const local = run.only.filter((s) => !NET_SUITES.includes(s));
  if (run.peer !== null && local.length > 0)
    throw new UsageError(`bench: --peer runs ${NET_SUITES.join(', ')} only, not ${local.join(', ')}`);
  return run;
}

function parseOnly(v: string): SuiteName[] {
  const names = v.split(',').filter((s) => s !== '');
  for (const n of names) {
    if (!(SUITE_NAMES as readonly string[]).includes(n))
      throw new UsageError(`bench: unknown suite ${n} (suites: ${SUITE_NAMES.join(', ')})`);
  }
  if (names.length === 0) throw new UsageError('bench: --only needs suite names');
  return SUITE_NAMES.filter((s) => names.includes(s));
}

function parseRounds(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1 || n > 50)
    throw new UsageError(`bench: --rounds must be 1..50, not ${v}`);
  return n;
}

/**
 * parsePeer: HOST:PORT, or [IPV6]:PORT.
 * => port 1..65535; throws UsageError otherwise
 */
export function parsePeer(v: string): { host: string; port: number } {
  const m = /^\[([^\]]+)\]:(\d+)$/.exec(v) ?? /^([^:[\]]+):(\d+)$/.exec(v);
  const port = m === null ? Number.NaN : Number(m[2]);
  if (m === null || !Number.isInteger(port) || port < 1 || port > 65535)
    throw new UsageError(`bench: --peer wants HOST:PORT (port 1..65535; [::1]:PORT for IPv6), not ${v}`);
  return { host: m[1], port };
}

/**
 * parseSink: the command line of `pnpm sink`.
 * => maxPort: the highest control port (the services take the ports above it)
 * => help if --help or -h is anywhere; throws UsageError on anything unknown, missing or out of range
 */
export function parseSink(argv: readonly string[], maxPort: number): SinkCommand | { kind: 'help' } {
  if (wantsHelp(argv)) return { kind: 'help' };
  const cmd: SinkCommand = { kind: 'sink', host: '127.0.0.1', port: DEFAULT_SINK_PORT };
  for (const { flag, values } of scan('sink', argv, { '--host': 1, '--port': 1 }, [])) {
    if (flag === '--host') cmd.host = values[0];
    else {
      const n = /^\d+$/.test(values[0]) ? Number(values[0]) : Number.NaN;
      if (!(n >= 0 && n <= maxPort))
        throw new UsageError(
          `sink: --port must be 0..${maxPort} (the services take the ports above), not ${values[0]}`,
        );
      cmd.port = n;
    }
  }
  return cmd;
}

/**
 * isLoopback: whether a listening address is this machine only.
 * => true for 127.0.0.0/8, ::1 and localhost
 */
export function isLoopback(host: string): boolean {
  return /^127\.\d+\.\d+\.\d+$/.test(host) || host === '::1' || host.toLowerCase() === 'localhost';
}

/**
 * usageExit: what a command does with a UsageError: its message and the usage on stderr, exit 2.
 */
export function usageExit(err: UsageError, usage: string): never {
  process.stderr.write(`${err.message}\n\n${usage}`);
  process.exit(2);
}
