/*
 * main.ts: `pnpm bench` -- when does loaning beat copying, and by how much, on this machine?
 *
 *   pnpm bench                        the full run (a few minutes)
 *   pnpm bench --quick                under a minute: fewer sizes, rounds and samples, same output shape
 *   pnpm bench --only tcp,echo        some suites only (suites.ts names them)
 *   pnpm bench --peer HOST:PORT       the network suites against a sink on another host
 *   pnpm bench --compare A.json B.json
 *
 * The suites run one after the other in the order suites.ts lists them, each in alternating rounds
 * (runner.ts), each through its entry in RUNNERS below. The run becomes a record (record.ts):
 * results/<stamp>-<commit>.json with a CSV and a chart beside it, benny's own JSON under
 * results/benny/<the same name>/, and latest.json only when the run was complete. The table goes to
 * stdout, progress to stderr.
 *
 * A run always ends, and ends clean: the network suites' sink (a child process, unless --peer) is
 * closed when the suite finishes or fails, an exit hook kills any child left (children.ts), and a
 * watchdog stops the run -- writing what it has, as an incomplete record -- if a case makes no progress
 * for too long or the whole run overstays its deadline. A suite that fails is reported and the others
 * still run. Exit status: 0 when every suite ran (a missed target is a finding, not a failure), 1 when
 * a suite failed, 2 on a usage error, 3 when the watchdog stopped the run.
 */
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { mbufStats } from '@loanout/mbuf';
import { sosendAutoThreshold } from '@loanout/sockets';
import { renderChart } from './chart.js';
import { killAll } from './children.js';
import { BENCH_USAGE, parseBench, type RunCommand, UsageError, usageExit } from './cli.js';
import { renderCompare } from './compare.js';
import { closeEcho, echoCases, setupEcho } from './echo.js';
import { latencyCases } from './latency.js';
import { loanCostCases } from './loan-cost.js';
import { setupSink, sinkCases } from './null-sink.js';
import { MiB, makePlan, type Plan } from './plan.js';
import { Progress } from './progress.js';
import {
  type BenchRecord,
  gitState,
  type Meta,
  makeMeta,
  readRecord,
  reserveName,
  SCHEMA,
  writeRecord,
} from './record.js';
import { closeRecv, recvCases, setupRecv } from './recv.js';
import { type RunResults, renderReport } from './report.js';
import { buildRows } from './rows.js';
import { type BenchCase, runRound } from './runner.js';
import { openSink, type SinkSession } from './sink-client.js';
import { runSoak } from './soak.js';
import { SUITE_NAMES, SUITES, type SuiteName } from './suites.js';
import { closeTcp, setupTcp, tcpCases } from './tcp.js';
import { setupTransfer, teardownTransfer, transferCostCases } from './transfer-cost.js';

const RESULTS = fileURLToPath(new URL('../results/', import.meta.url));

/** what a suite's runner works with */
interface Ctx {
  cmd: RunCommand;
  plan: Plan;
  progress: Progress;
  res: RunResults;
  /** where benny's JSON of this run goes */
  bennyDir: string;
  /** the peer's machine, once a session has said hello */
  peer: Meta['peer'];
  /** the checkout's commit and state when the run began */
  git: { commit: string; dirty: boolean | null };
  /** the run's record name (<stamp>-<commit>) and start */
  name: string;
  started: Date;
}

/** a suite's runner: how many cases it goes through (for the progress line), and the run itself */
interface Runner {
  steps: (plan: Plan) => number;
  run: (ctx: Ctx) => Promise<void>;
}

/* each network suite measures every mode at every size, every round */
const netSteps = (suite: SuiteName, sizes: (p: Plan) => number[]) => (p: Plan) =>
  sizes(p).length * SUITES[suite].modes.length * p.rounds;

/** every suite's runner: a new suite needs one here (and in suites.ts) */
const RUNNERS: Record<SuiteName, Runner> = {
  'null-sink': {
    steps: (p) => (p.sizes.length * 3 + p.crossoverSizes.length * 2) * p.rounds,
    run: nullSinkSuite,
  },
  'loan-cost': { steps: (p) => p.loanPages.length * 2 * p.rounds, run: loanCostSuite },
  'transfer-cost': { steps: (p) => p.transferPages.length * 2 * p.rounds, run: transferCostSuite },
  soak: { steps: () => 1, run: soakSuite },
  tcp: { steps: netSteps('tcp', (p) => p.sizes), run: tcpSuite },
  recv: { steps: netSteps('recv', (p) => p.sizes), run: recvSuite },
  echo: { steps: netSteps('echo', (p) => p.sizes), run: echoSuite },
  latency: { steps: netSteps('latency', (p) => p.latencySizes), run: latencySuite },
};

function gc(): void {
  (globalThis as { gc?: () => void }).gc?.();
}

/* runRounds: every round of one suite's cases, measurements appended to the results */
async function runRounds(ctx: Ctx, title: string, cases: BenchCase[]): Promise<void> {
  const { plan, progress, res } = ctx;
  for (let r = 0; r < plan.rounds; r++) {
    progress.phase(`${title} round ${r + 1}/${plan.rounds}`);
    gc();
    const ms = await runRound(`${title}-round${r + 1}`, cases, r, plan.cases, {
      saveDir: ctx.bennyDir,
      onCase: (name) => progress.step(name),
    });
    res.measurements.push(...ms);
  }
}

/* inKernel: an in-kernel suite on a kernel of its own, checked for leaks afterwards */
async function inKernel(threshold: number, fn: (b: Awaited<ReturnType<typeof setupSink>>) => Promise<void>) {
  const b = await setupSink(threshold);
  await fn(b);
  const loaned = b.kernel.stats().loanedPages;
  const kva = mbufStats(b.kernel).kvaPagesInUse;
  if (loaned !== 0 || kva !== 0) throw new Error(`left ${loaned} pages on loan, ${kva} kva pages reserved`);
  b.kernel.checkInvariants();
}

async function nullSinkSuite(ctx: Ctx): Promise<void> {
  ctx.progress.phase('calibrating the auto threshold (sosendAutoThreshold)');
  ctx.res.autoThreshold = await sosendAutoThreshold();
  const { plan } = ctx;
  await inKernel(ctx.res.autoThreshold, (b) =>
    runRounds(ctx, 'null-sink', sinkCases(b, plan.sizes, plan.crossoverSizes, plan.batchBytes['null-sink'])),
  );
}

async function loanCostSuite(ctx: Ctx): Promise<void> {
  await inKernel(Number.POSITIVE_INFINITY, (b) =>
    runRounds(ctx, 'loan-cost', loanCostCases(b, ctx.plan.loanPages, ctx.plan.loanCostBatchPages)),
  );
}

async function transferCostSuite(ctx: Ctx): Promise<void> {
  const { plan } = ctx;
  const b = await setupTransfer(Math.max(...plan.transferPages));
  await runRounds(ctx, 'transfer-cost', transferCostCases(b, plan.transferPages, plan.loanCostBatchPages));
  teardownTransfer(b);
}

async function soakSuite(ctx: Ctx): Promise<void> {
  ctx.progress.phase(`soak: ${ctx.plan.soakSends.toLocaleString('en-US')} in-kernel 4 KiB loans`);
  ctx.res.soak = await runSoak(ctx.plan.soakSends, (f) => ctx.progress.info(`${Math.round(f * 100)}%`));
  ctx.progress.step('soak done');
}

/* withSink: run a network suite against the sink (our own child, or the peer), closed afterwards */
async function withSink(ctx: Ctx, suite: SuiteName, fn: (sink: SinkSession) => Promise<void>) {
  const peer = ctx.cmd.peer;
  ctx.progress.phase(
    `${suite}: ${peer === null ? 'starting the sink' : `connecting to the sink at ${peer.host}:${peer.port}`}`,
  );
  const sink = await openSink(peer);
  if (peer !== null && sink.machine !== null) ctx.peer = { address: sink.address, ...sink.machine };
  try {
    await fn(sink);
  } finally {
    await sink.close();
  }
}

async function tcpSuite(ctx: Ctx): Promise<void> {
  await withSink(ctx, 'tcp', async (sink) => {
    const b = await setupTcp(sink);
    try {
      await runRounds(ctx, 'tcp', tcpCases(b, ctx.plan.sizes, ctx.plan.batchBytes.tcp));
    } finally {
      ctx.progress.phase('tcp: checking and closing');
      ctx.res.tcpCheck = await closeTcp(b, ctx.plan.quick ? 32 * MiB : 128 * MiB);
    }
  });
}

async function recvSuite(ctx: Ctx): Promise<void> {
  await withSink(ctx, 'recv', async (sink) => {
    const b = await setupRecv(sink, Math.max(...ctx.plan.sizes));
    try {
      await runRounds(ctx, 'recv', recvCases(b, ctx.plan.sizes, ctx.plan.batchBytes.recv));
    } finally {
      ctx.progress.phase('recv: checking and closing');
      ctx.res.recvCheck = await closeRecv(b);
    }
  });
}

async function echoSuite(ctx: Ctx): Promise<void> {
  await withSink(ctx, 'echo', async (sink) => {
    const b = await setupEcho(sink, SUITES.echo.modes);
    try {
      await runRounds(ctx, 'echo', echoCases(b, ctx.plan.sizes, ctx.plan.batchBytes.echo));
    } finally {
      ctx.progress.phase('echo: checking and closing');
      ctx.res.echoCheck = await closeEcho(b);
    }
  });
}

async function latencySuite(ctx: Ctx): Promise<void> {
  await withSink(ctx, 'latency', async (sink) => {
    const b = await setupEcho(sink, SUITES.latency.modes);
    try {
      await runRounds(ctx, 'latency', latencyCases(b, ctx.plan.latencySizes, ctx.plan.latencyKeep));
    } finally {
      ctx.progress.phase('latency: checking and closing');
      ctx.res.latencyCheck = await closeEcho(b);
    }
  });
}

/* attempt: run one suite; a failure is recorded and the run goes on */
async function attempt(ctx: Ctx, name: SuiteName): Promise<void> {
  try {
    await RUNNERS[name].run(ctx);
  } catch (err) {
    ctx.res.errors.push(`${name}: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  }
}

/* writeOutputs: the run's record, CSV and chart (and latest.* if complete); returns what was written */
function writeOutputs(ctx: Ctx): { files: string[]; complete: boolean } {
  const { res, cmd, progress, started } = ctx;
  const rows = buildRows(res.measurements, res.autoThreshold, res.soak);
  const meta = makeMeta(
    {
      date: started.toISOString(),
      quick: res.quick,
      rounds: res.rounds,
      only: cmd.only,
      argv: process.argv.slice(2),
      peer: ctx.peer,
      errors: res.errors.map((e) => e.split('\n')[0]),
      seconds: progress.elapsed,
    },
    ctx.git,
  );
  const rec: BenchRecord = { schema: SCHEMA, meta, rows };
  const when = started.toISOString().slice(0, 16).replace('T', ' ');
  const chart = renderChart(rows, `${res.quick ? 'quick' : 'full'} run, ${when} UTC, ${ctx.git.commit}`);
  return { files: writeRecord(outDir(cmd), ctx.name, rec, chart), complete: meta.complete };
}

/* userPath: a path the user typed, relative to where they typed it (pnpm runs scripts elsewhere) */
function userPath(p: string): string {
  return resolve(process.env.INIT_CWD ?? process.cwd(), p);
}

function outDir(cmd: RunCommand): string {
  return cmd.out === null ? RESULTS : userPath(cmd.out);
}

/* startWatchdog: stop the run (writing what it has) on a stall or past the deadline */
function startWatchdog(ctx: Ctx): NodeJS.Timeout {
  const { plan, progress, res } = ctx;
  const t = setInterval(() => {
    const stalled = (Date.now() - progress.lastBeat) / 1000 > plan.stallSec;
    const late = progress.elapsed > plan.deadlineSec;
    if (!stalled && !late) return;
    progress.clear();
    const why = stalled ? `no progress for ${plan.stallSec} s` : `over the ${plan.deadlineSec} s deadline`;
    process.stderr.write(`bench: stopped, ${why}; writing partial results\n`);
    killAll();
    res.errors.push(`watchdog: ${why}`);
    try {
      writeOutputs(ctx);
      process.stdout.write(renderReport(res));
    } finally {
      process.exit(3);
    }
  }, 1000);
  t.unref();
  return t;
}

/* newContext: what a run starts with: its plan, its record's name, empty results */
function newContext(cmd: RunCommand): Ctx {
  const plan = makePlan(cmd.quick);
  if (cmd.rounds !== null) plan.rounds = cmd.rounds;
  const started = new Date();
  const git = gitState(fileURLToPath(new URL('.', import.meta.url)));
  const name = reserveName(outDir(cmd), started, git.commit);
  const peer = cmd.peer;
  const res: RunResults = {
    quick: plan.quick,
    rounds: plan.rounds,
    far: peer === null ? 'the sink, another process on 127.0.0.1' : `the sink at ${peer.host}:${peer.port}`,
    measurements: [],
    autoThreshold: null,
    soak: null,
    tcpCheck: null,
    recvCheck: null,
    echoCheck: null,
    latencyCheck: null,
    errors: [],
  };
  const steps = cmd.only.reduce((a, s) => a + RUNNERS[s].steps(plan), 1);
  const bennyDir = join(outDir(cmd), 'benny', name);
  return { cmd, plan, progress: new Progress(steps), res, bennyDir, peer: null, git, name, started };
}

/* runBench: a run of the suites asked for; resolves with the exit status */
async function runBench(cmd: RunCommand): Promise<number> {
  const ctx = newContext(cmd);
  if (typeof (globalThis as { gc?: unknown }).gc !== 'function') {
    process.stderr.write('bench: run node with --expose-gc (pnpm bench does) for the soak heap figures\n');
  }
  const watchdog = startWatchdog(ctx);
  try {
    for (const suite of SUITE_NAMES) if (cmd.only.includes(suite)) await attempt(ctx, suite);
  } finally {
    clearInterval(watchdog);
    killAll();
  }
  const { files, complete } = writeOutputs(ctx);
  ctx.progress.clear();
  process.stdout.write(renderReport(ctx.res));
  const partial = complete ? '' : `latest.json left as it was: ${whyPartial(cmd, ctx.res)}\n`;
  const took = ctx.progress.elapsed.toFixed(0);
  process.stdout.write(
    `\nwrote ${files.join(', ')}\nand benny's JSON in ${ctx.bennyDir} (${took} s)\n${partial}`,
  );
  return ctx.res.errors.length === 0 ? 0 : 1;
}

function whyPartial(cmd: RunCommand, res: RunResults): string {
  if (cmd.peer !== null) return 'a run against a peer';
  if (res.errors.length > 0) return 'a suite failed';
  return `a run of some suites (${cmd.only.join(', ')})`;
}

/* runCompare: two records side by side */
function runCompare(a: string, b: string): number {
  const read = (file: string) => {
    try {
      return { file, ...readRecord(userPath(file)) };
    } catch (err) {
      throw new UsageError(`bench: --compare: ${(err as Error).message}`);
    }
  };
  process.stdout.write(renderCompare(read(a), read(b)));
  return 0;
}

async function main(): Promise<number> {
  const cmd = parseBench(process.argv.slice(2));
  if (cmd.kind === 'help') {
    process.stdout.write(BENCH_USAGE);
    return 0;
  }
  if (cmd.kind === 'compare') return runCompare(cmd.a, cmd.b);
  return runBench(cmd);
}

main().then(
  (code) => {
    process.exitCode = code;
    setTimeout(() => process.exit(code), 3_000).unref();
  },
  (err) => {
    killAll();
    if (err instanceof UsageError) usageExit(err, BENCH_USAGE);
    process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  },
);
