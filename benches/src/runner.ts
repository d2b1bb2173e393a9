/*
 * runner.ts: running cases with benny (benchmark.js underneath), round by round.
 *
 * A round of a suite is one benny suite: every size, and for each size every mode once, back to back
 * (the mode order rotates from round to round). Its cases are async: benny hands benchmark.js a
 * deferred test, and a case's "operation" is a batch of sends (see plan.ts). benny's own JSON (its
 * b.save output, with every sample) is kept under results/benny/, one file per suite and round.
 *
 * A case's figure is the median of benchmark.js's samples (each sample is the mean time of one cycle
 * of operations) -- more robust than the mean on a machine shared with other work.
 *
 * benny prints to stdout (console.log) as it goes; we keep stdout for our table, so its chatter is
 * muffled while a suite runs, and progress goes to stderr through the `onCase` hook instead. A case
 * whose operation throws stops doing work (it returns at once from then on, so benchmark.js finishes
 * it quickly) and the round fails with that error once benny is done: a failure costs bounded time.
 */
import { add, configure, cycle, save, suite } from 'benny';
import { type CaseOptions, formatSize } from './plan.js';
import { type Measurement, rotate, throughput } from './stats.js';
import { type Mode, SUITES, type SuiteName } from './suites.js';

export interface BenchCase {
  suite: SuiteName;
  mode: Mode;
  /* bytes per send (pages per call for loan-cost) */
  size: number;
  /* sends (calls) in one operation */
  perOp: number;
  /* bytes moved by one send (call) */
  bytesPerSend: number;
  /* one operation */
  run: () => Promise<void>;
  /* latency cases: the round trips timed since the last call, µs (the runner drains it per round) */
  drain?: () => number[];
}

export interface RoundHooks {
  /* where benny saves its JSON; null: don't save */
  saveDir: string | null;
  /* called as each case finishes */
  onCase?: (name: string) => void;
}

/* caseName: how a case is named in benny's output */
export function caseName(c: Pick<BenchCase, 'suite' | 'mode' | 'size'>): string {
  return SUITES[c.suite].kind === 'per-page'
    ? `${c.suite} ${c.mode} ${c.size}p`
    : `${c.suite} ${c.mode} ${formatSize(c.size)}`;
}

/*
 * orderRound: the cases of round r: size by size, each size's modes in an order rotated by r.
 * => every case exactly once
 */
export function orderRound(cases: readonly BenchCase[], r: number): BenchCase[] {
  const sizes = [...new Set(cases.map((c) => c.size))];
  const out: BenchCase[] = [];
  for (const size of sizes)
    out.push(
      ...rotate(
        cases.filter((c) => c.size === size),
        r,
      ),
    );
  return out;
}

/*
 * runRound: run one round of cases through benny and return one measurement per case.
 * => cases have distinct names; throws the first error a case's operation threw
 */
export async function runRound(
  title: string,
  cases: readonly BenchCase[],
  round: number,
  opts: CaseOptions,
  hooks: RoundHooks,
): Promise<Measurement[]> {
  const ordered = orderRound(cases, round);
  let failure: unknown = null;
  const entries = ordered.map((c) =>
    add(caseName(c), async () => {
      if (failure !== null) return;
      try {
        await c.run();
      } catch (err) {
        failure ??= err;
      }
    }),
  );
  const extra = hooks.saveDir === null ? [] : [save({ file: title, folder: hooks.saveDir, details: true })];
  const summary = await muffled(() =>
    suite(
      title,
      ...entries,
      configure({ cases: opts }),
      cycle((result) => {
        hooks.onCase?.(result.name);
        return undefined;
      }),
      ...extra,
    ),
  );
  if (failure !== null) throw failure;
  const byName = new Map(summary.results.map((r) => [r.name, r]));
  return ordered.map((c) => measurement(c, round, byName.get(caseName(c))));
}

/** what benny says of one case */
interface CaseResult {
  samples: number;
  details: { median: number; relativeMarginOfError: number };
}

/* measurement: a case's figures from benny's median seconds per operation, its sample count and margin */
function measurement(c: BenchCase, round: number, r: CaseResult | undefined): Measurement {
  const secsPerOp = r?.details.median;
  if (r === undefined || secsPerOp === undefined || !(secsPerOp > 0)) {
    throw new Error(`bench: benny returned no samples for ${caseName(c)}`);
  }
  const opsPerSec = c.perOp / secsPerOp;
  const m: Measurement = {
    suite: c.suite,
    mode: c.mode,
    size: c.size,
    round,
    opsPerSec,
    mbps: throughput(opsPerSec, c.bytesPerSend),
    samples: r.samples,
    rme: r.details.relativeMarginOfError,
  };
  if (c.drain !== undefined) m.latencies = c.drain();
  return m;
}

/* muffled: run fn with console.log silenced (benny's chatter), restoring it whatever happens */
async function muffled<T>(fn: () => Promise<T>): Promise<T> {
  const log = console.log;
  console.log = () => undefined;
  try {
    return await fn();
  } finally {
    console.log = log;
  }
}
