/*
 * plan.ts: what a run measures and for how long -- the full run (the default, thorough, a few minutes
 * on a 2-core machine) or `--quick` (under a minute: fewer sizes, rounds and samples, the same output
 * shape).
 *
 * Time goes mostly to benchmark.js: every case takes at least minSamples samples of at least minTime
 * seconds each, and keeps sampling until maxTime. A case runs once per round, so a suite costs about
 * sizes x modes x rounds x maxTime. Batching keeps the harness out of the figures: one benchmark
 * "operation" is a batch of sends (a few dozen KiB in-kernel, a few MiB over TCP), so the per-call
 * overhead of benchmark.js's deferred machinery is spread over many sends, the same for every mode.
 */

export const KiB = 1024;
export const MiB = 1024 * 1024;

/* benchmark.js options for every case (seconds) */
export interface CaseOptions {
  minTime: number;
  maxTime: number;
  minSamples: number;
  delay: number;
}

export interface Plan {
  quick: boolean;
  rounds: number;
  /* send sizes in bytes for null-sink, tcp and echo */
  sizes: number[];
  /* extra sub-page null-sink sizes (copy and loan only) to find the crossover below 4 KiB */
  crossoverSizes: number[];
  /* loan-cost: pages per uvmLoan call */
  loanPages: number[];
  /* transfer-cost: pages per transfer or copyout call */
  transferPages: number[];
  /* soak: in-kernel 4 KiB loan sends */
  soakSends: number;
  /* latency: message sizes in bytes (one message in flight; an operation is one round trip) */
  latencySizes: number[];
  /* latency: at most this many round trips are kept per case and round (the rest are not timed) */
  latencyKeep: number;
  /* bytes per benchmark operation, by suite (an op is ceil(batch / size) sends) */
  batchBytes: Record<'null-sink' | 'tcp' | 'recv' | 'echo', number>;
  /* loan-cost and transfer-cost: pages per benchmark operation (an op is ceil(batch / pages) calls) */
  loanCostBatchPages: number;
  cases: CaseOptions;
  /* the whole run may take no longer than this (then children are killed and the run fails) */
  deadlineSec: number;
  /* no benchmark progress for this long means a hung case */
  stallSec: number;
}

/*
 * makePlan: the plan for a full or a quick run.
 * => quick: 4 sizes (3 for latency), 3 rounds, short samples, 10^5 soak sends; full: 5 sizes +
 *    sub-page crossover sizes, 7 rounds, 10^6 soak sends
 */
export function makePlan(quick: boolean): Plan {
  if (quick) {
    return {
      quick,
      rounds: 3,
      sizes: [4 * KiB, 64 * KiB, 256 * KiB, MiB],
      crossoverSizes: [],
      loanPages: [1, 16, 256],
      transferPages: [16, 256],
      soakSends: 100_000,
      latencySizes: [64, 4 * KiB, 64 * KiB],
      latencyKeep: 100_000,
      batchBytes: { 'null-sink': 64 * KiB, tcp: 2 * MiB, recv: 2 * MiB, echo: 2 * MiB },
      loanCostBatchPages: 256,
      cases: { minTime: 0.02, maxTime: 0.06, minSamples: 3, delay: 0.001 },
      deadlineSec: 150,
      stallSec: 30,
    };
  }
  return {
    quick,
    rounds: 7,
    sizes: [4 * KiB, 16 * KiB, 64 * KiB, 256 * KiB, MiB],
    crossoverSizes: [512, 1 * KiB, 2 * KiB],
    loanPages: [1, 16, 256],
    transferPages: [16, 256],
    soakSends: 1_000_000,
    latencySizes: [64, 1 * KiB, 4 * KiB, 16 * KiB, 64 * KiB],
    latencyKeep: 200_000,
    batchBytes: { 'null-sink': 64 * KiB, tcp: 4 * MiB, recv: 4 * MiB, echo: 4 * MiB },
    loanCostBatchPages: 1024,
    cases: { minTime: 0.05, maxTime: 0.3, minSamples: 5, delay: 0.002 },
    deadlineSec: 900,
    stallSec: 60,
  };
}

/*
 * sendsPerOp: how many sends of `size` bytes make one benchmark operation of about `batch` bytes.
 * => at least 1
 */
export function sendsPerOp(size: number, batch: number): number {
  return Math.max(1, Math.ceil(batch / size));
}

/* formatSize: 512 B, 4 KiB, 1 MiB */
export function formatSize(bytes: number): string {
  if (bytes >= MiB && bytes % MiB === 0) return `${bytes / MiB} MiB`;
  if (bytes >= KiB && bytes % KiB === 0) return `${bytes / KiB} KiB`;
  return `${bytes} B`;
}
