/*
 * cli.ts: the command line of `pnpm bench`.
 *
 *   --quick            the quick run (under a minute)
 *   --only a,b         only these suites: null-sink, loan-cost, soak, tcp, echo
 *   --rounds N         alternating rounds (1..50) instead of the plan's
 *
 * pnpm may pass a bare `--` through (`pnpm bench -- --quick`); it is ignored.
 */

export const SUITES = ['null-sink', 'loan-cost', 'soak', 'tcp', 'echo'] as const;
export type SuiteName = (typeof SUITES)[number];

export interface Cli {
  quick: boolean;
  only: SuiteName[];
  rounds: number | null;
}

const USAGE = 'usage: pnpm bench [--quick] [--only null-sink,loan-cost,soak,tcp,echo] [--rounds N]';

/*
 * parseCli: the command line (a bare `--`, as pnpm may pass one through, is ignored).
 * => throws with the usage on anything unknown
 */
export function parseCli(argv: string[]): Cli {
  const cli: Cli = { quick: false, only: [...SUITES], rounds: null };
  for (let i = 0; i < argv.length; i++) {
    const [flag, inline] = argv[i].split('=', 2) as [string, string | undefined];
    const value = () => inline ?? argv[++i] ?? '';
    if (flag === '--') continue;
    else if (flag === '--quick') cli.quick = true;
    else if (flag === '--only') cli.only = parseOnly(value());
    else if (flag === '--rounds') cli.rounds = parseRounds(value());
    else throw new Error(`bench: unknown argument ${argv[i]}\n${USAGE}`);
  }
  return cli;
}

function parseOnly(v: string): SuiteName[] {
  const names = v.split(',').filter((s) => s !== '');
  for (const n of names) {
    if (!(SUITES as readonly string[]).includes(n)) throw new Error(`bench: unknown suite ${n}\n${USAGE}`);
  }
  if (names.length === 0) throw new Error(`bench: --only needs suite names\n${USAGE}`);
  return names as SuiteName[];
}

function parseRounds(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1 || n > 50) throw new Error(`bench: --rounds must be 1..50\n${USAGE}`);
  return n;
}
