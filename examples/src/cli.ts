/*
 * cli.ts: what every example's command line shares -- its usage, its flags, and how it says no.
 *
 * A command describes itself once (a `Command`: name, one line of purpose, flags with their values,
 * notes such as limits), and `parseCommand` does the rest the same way for all of them:
 *
 *   --help, -h            the usage on stdout, exit 0
 *   a usage error         one line on stderr ("pnpm echo: unknown flag --prot"), then the usage; exit 2
 *                         (an unknown flag, a flag without its value, a value it cannot take, an
 *                         argument too many or missing): never a stack trace
 *   a failure             (the port is taken, the server is not there) one line, exit 1 -- `fail`
 *
 * A leading `--` is dropped, so `pnpm echo -- --port 7008` (npm's habit) works as `pnpm echo --port 7008`.
 *
 * Ctrl-C after a clean report must end in exit 0 with no word from pnpm. A terminal's Ctrl-C goes to
 * the whole process group, so everything between pnpm and the command must let the command decide:
 * the package.json scripts run `exec node --import tsx ...` -- `exec`, because Debian's sh (dash),
 * killed by the SIGINT while it waited, made pnpm report `ELIFECYCLE Command failed`; and node with
 * tsx as a loader rather than the tsx command, which relays the signal to its child and SIGKILLs it
 * (exit 130) if the child does not acknowledge within 2 x 30 ms -- on a busy machine it may not.
 */
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import type { EchoMode, SendMode } from '@loanout/sockets';

export interface Flag {
  /* a boolean flag takes no value; a string flag takes one, shown in the usage as `value` */
  type: 'boolean' | 'string';
  value?: string;
  help: string;
}

export interface Command {
  /* as the user types it: 'pnpm echo' */
  name: string;
  /* one line: what it does */
  summary: string;
  /* a required positional argument, e.g. '<file>' (none if absent) */
  argument?: { name: string; help: string };
  flags: Record<string, Flag>;
  /* more lines after the flags: limits, what Ctrl-C does */
  notes?: string[];
}

export interface Parsed {
  values: Record<string, string | boolean | undefined>;
  argument: string | undefined;
}

const HELP: Flag = { type: 'boolean', help: 'print this help and exit' };

/* usage: the command's usage text, as --help prints it */
export function usage(cmd: Command): string {
  const flagWords = Object.entries(cmd.flags).map(([name, f]) => `[${flagSpec(name, f)}]`);
  const head = ['usage:', cmd.name, ...(cmd.argument ? [cmd.argument.name] : []), ...flagWords].join(' ');
  const rows: [string, string][] = [
    ...(cmd.argument ? [[cmd.argument.name, cmd.argument.help] as [string, string]] : []),
    ...Object.entries(cmd.flags).map(([name, f]): [string, string] => [flagSpec(name, f), f.help]),
    ['-h, --help', HELP.help],
  ];
  const width = Math.max(...rows.map(([left]) => left.length)) + 2;
  return [
    head,
    '',
    cmd.summary,
    '',
    ...rows.flatMap(([left, help]) =>
      wrap(help, COLUMNS - 2 - width).map((l, i) => `  ${(i === 0 ? left : '').padEnd(width)}${l}`),
    ),
    ...(cmd.notes !== undefined ? ['', ...cmd.notes] : []),
    '',
    'exit status: 0 done, 1 failed, 2 usage error',
  ].join('\n');
}

/* the usage fits a terminal this wide */
const COLUMNS = 100;

/* wrap: words in lines of at most `width` characters (a longer word gets a line of its own) */
function wrap(text: string, width: number): string[] {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(' ')) {
    if (line !== '' && line.length + 1 + word.length > width) {
      lines.push(line);
      line = word;
    } else line = line === '' ? word : `${line} ${word}`;
  }
  return [...lines, line];
}

function flagSpec(name: string, f: Flag): string {
  return f.type === 'string' ? `--${name} ${f.value ?? 'VALUE'}` : `--${name}`;
}

/* what a command line asks for: the usage, or to run (`Parsed`), or nothing sensible (`error`) */
export type CommandLine = { help: true } | { error: string } | Parsed;

/*
 * readCommandLine: the command line, checked against `cmd`; never throws, whatever the words
 * => { help: true } if --help or -h is anywhere in it
 * => { error } for a usage error: an unknown flag, a string flag without its value (or whose value
 *    is another flag), a value given to a boolean flag, an argument missing or too many
 * => else the flags' values and the argument; a leading `--` is dropped
 */
export function readCommandLine(cmd: Command, argv: string[]): CommandLine {
  const args = argv[0] === '--' ? argv.slice(1) : argv;
  const { values, positionals, tokens } = parseArgs({
    args,
    options: { ...cmd.flags, help: { type: 'boolean', short: 'h' } },
    strict: false,
    allowPositionals: true,
    tokens: true,
  });
  if (tokens.some((t) => t.kind === 'option' && t.name === 'help')) return { help: true };
  for (const t of tokens) {
    if (t.kind !== 'option') continue;
    const flag = Object.hasOwn(cmd.flags, t.name) ? cmd.flags[t.name] : undefined;
    if (flag === undefined) return { error: `unknown flag ${t.rawName}` };
    if (flag.type === 'boolean' && t.value !== undefined) return { error: `${t.rawName} takes no value` };
    if (flag.type === 'string' && (t.value === undefined || t.value.startsWith('--')))
      return { error: `${t.rawName} needs a value (${flagSpec(t.name, flag)})` };
  }
  const wanted = cmd.argument ? 1 : 0;
  if (positionals.length > wanted) return { error: `unexpected argument ${positionals[wanted]}` };
  if (positionals.length < wanted) return { error: `missing ${cmd.argument!.name}` };
  const known: Parsed['values'] = {};
  for (const name of Object.keys(cmd.flags)) known[name] = values[name];
  return { values: known, argument: positionals[0] };
}

/*
 * parseCommand: the command line of this process, checked against `cmd` (readCommandLine)
 * => --help or -h anywhere: prints the usage and exits 0
 * => a usage error: one line and the usage on stderr, exit 2
 */
export function parseCommand(cmd: Command, argv = process.argv.slice(2)): Parsed {
  const line = readCommandLine(cmd, argv);
  if ('help' in line) {
    console.log(usage(cmd));
    process.exit(0);
  }
  if ('error' in line) usageError(cmd, line.error);
  return line;
}

/* usageError: say what is wrong in one line, then the usage; exit 2 */
export function usageError(cmd: Command, msg: string): never {
  console.error(`${cmd.name}: ${msg}\n\n${usage(cmd)}`);
  process.exit(2);
}

/* fail: the command could not do its job (not a usage error): one line, exit 1 */
export function fail(msg: string): never {
  console.error(`error: ${msg}`);
  process.exit(1);
}

/* flag values, checked: a bad one is a usage error naming the flag and what it takes */

export function portValue(cmd: Command, p: Parsed, name: string, dflt: number): number {
  const s = p.values[name];
  if (s === undefined) return dflt;
  const n = Number(s);
  if (typeof s !== 'string' || !/^\d+$/.test(s) || n > 65535)
    usageError(cmd, `bad --${name} ${String(s)}: a port is an integer 0..65535`);
  return n;
}

export function modeValue(cmd: Command, p: Parsed, dflt: SendMode): SendMode {
  const m = p.values.mode ?? dflt;
  if (m !== 'copy' && m !== 'loan' && m !== 'auto')
    usageError(cmd, `bad --mode ${String(m)}: copy, loan or auto`);
  return m;
}

/* echoModeValue: --mode for an echo server: a send mode, or zerocopy */
export function echoModeValue(cmd: Command, p: Parsed, dflt: EchoMode): EchoMode {
  const m = p.values.mode ?? dflt;
  if (m !== 'copy' && m !== 'loan' && m !== 'auto' && m !== 'zerocopy')
    usageError(cmd, `bad --mode ${String(m)}: copy, loan, auto or zerocopy`);
  return m;
}

/* countValue: a positive integer flag, at most `limit.max` (the error says `limit.why`) */
export function countValue(
  cmd: Command,
  p: Parsed,
  name: string,
  dflt: number,
  limit: { max: number; why: string } | null = null,
): number {
  const s = p.values[name];
  if (s === undefined) return dflt;
  const n = Number(s);
  const max = limit?.max ?? Number.MAX_SAFE_INTEGER;
  if (typeof s !== 'string' || !/^\d+$/.test(s) || n < 1 || n > max) {
    const range =
      limit === null ? 'a whole number, at least 1' : `a whole number from 1 to ${max}: ${limit.why}`;
    usageError(cmd, `bad --${name} ${String(s)}: ${range}`);
  }
  return n;
}

/* secondsValue: a whole number of seconds, 0..2147483 (0: never; a timer takes at most 2^31 - 1 ms) */
export function secondsValue(cmd: Command, p: Parsed, name: string, dflt: number): number {
  const s = p.values[name];
  if (s === undefined) return dflt;
  const n = Number(s);
  if (typeof s !== 'string' || !/^\d+$/.test(s) || n > 2_147_483)
    usageError(cmd, `bad --${name} ${String(s)}: whole seconds from 0 (never) to 2147483`);
  return n;
}

export function stringValue(p: Parsed, name: string, dflt: string): string {
  const s = p.values[name];
  return typeof s === 'string' ? s : dflt;
}

/*
 * onInterrupt: on Ctrl-C (SIGINT), run `stop` -- close, print the report -- and exit 0.
 * => the listener stays installed until the exit, and a second SIGINT meanwhile is ignored (with
 *    process.once, a second SIGINT -- a second Ctrl-C, or a relayed one -- would kill the command in
 *    the middle of its report)
 * => returns `stop` guarded the same way, for a command that also stops by itself (sendfile --once)
 */
export function onInterrupt(stop: () => Promise<void> | void): () => Promise<void> {
  let stopping: Promise<void> | null = null;
  const once = (): Promise<void> => {
    stopping ??= (async () => {
      await stop();
      process.exit(0);
    })();
    return stopping;
  };
  process.on('SIGINT', () => void once());
  return once;
}

/* isMain: the module at `url` is the script node was started with (not imported by a test) */
export function isMain(url: string): boolean {
  const script = process.argv[1];
  if (script === undefined) return false;
  try {
    return realpathSync(fileURLToPath(url)) === realpathSync(script);
  } catch {
    return false;
  }
}

export function mb(bytes: number): string {
  return `${(bytes / (1024 * 1024)).toFixed(1)} MiB`;
}

/*
 * Traffic: bytes that crossed between a process and the network, one way, one way of moving them.
 * Reports list every row, so a new way (receive by page transfer) is one more row.
 */
export interface Traffic {
  direction: 'received' | 'sent';
  /* how the bytes moved: 'by copy', 'by loan', ... */
  how: string;
  bytes: number;
  /* mbuf chains, where the count means something */
  chains?: number;
}

/* trafficLines: one aligned line per row: "  received by copy  1048576 bytes (1.0 MiB)" */
export function trafficLines(rows: Traffic[]): string[] {
  const label = (r: Traffic) => `${r.direction} ${r.how}`;
  const w = Math.max(...rows.map((r) => label(r).length));
  const bw = Math.max(...rows.map((r) => String(r.bytes).length));
  return rows.map((r) => {
    const size = r.bytes >= 1024 * 1024 ? ` (${mb(r.bytes)})` : '';
    const chains = r.chains !== undefined && r.bytes > 0 ? ` in ${r.chains} chains` : '';
    return `  ${label(r).padEnd(w)}  ${String(r.bytes).padStart(bw)} bytes${size}${chains}`;
  });
}
