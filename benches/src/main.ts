/*
 * main.ts: `pnpm bench` -- when does loaning beat copying, and by how much, on this machine?
 *
 *   pnpm bench                 the full run (a few minutes)
 *   pnpm bench --quick         under a minute: fewer sizes, rounds and samples, same output shape
 *   pnpm bench --only tcp,echo run only some suites (null-sink, loan-cost, soak, tcp, echo)
 *   pnpm bench --rounds 7      more (or fewer) alternating rounds
 *
 * The suites run one after the other -- null-sink, loan-cost, soak, tcp, echo -- each in alternating
 * rounds (runner.ts); the figures go to benches/results/latest.json and chart.svg, benny's own JSON
 * to results/benny/, and the table to stdout. Progress goes to stderr.
 *
 * A run always ends, and ends clean: every suite's children are closed when it finishes or fails, an
 * exit hook kills any left (children.ts), and a watchdog stops the run -- writing what it has -- if a
 * case makes no progress for too long or the whole run overstays its deadline. A suite that fails is
 * reported and the others still run; the exit status is then 1. A missed target is not a failure: it
 * is a finding, printed in the table.
 */
import { mkdirSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { mbufStats } from '@loanout/mbuf';
import { sosendAutoThreshold } from '@loanout/sockets';
import { renderChart } from './chart.js';
import { killAll } from './children.js';
import { parseCli, type SuiteName } from './cli.js';
import { closeEcho, echoCases, setupEcho } from './echo.js';
import { loanCostCases } from './loan-cost.js';
import { setupSink, sinkCases } from './null-sink.js';
import { MiB, makePlan, type Plan } from './plan.js';
import { Progress } from './progress.js';
import { buildRows, type RunResults, renderReport } from './report.js';
import { type BenchCase, runRound } from './runner.js';
import { runSoak } from './soak.js';
import { closeTcp, setupTcp, tcpCases } from './tcp.js';

const RESULTS = fileURLToPath(new URL('../results/', import.meta.url));
const BENNY = `${RESULTS}benny/`;

/* countSteps: how many cases the run will go through (for the progress percentage) */
function countSteps(plan: Plan, only: SuiteName[]): number {
  const per: Record<SuiteName, number> = {
    'null-sink': plan.sizes.length * 3 + plan.crossoverSizes.length * 2,
    'loan-cost': plan.loanPages.length * 2,
    soak: 1 / plan.rounds,
    tcp: plan.sizes.length * 4,
    echo: plan.sizes.length * 3,
  };
  return Math.ceil(only.reduce((a, s) => a + per[s] * plan.rounds, 1));
}

function gc(): void {
  (globalThis as { gc?: () => void }).gc?.();
}

/* runRounds: every round of one suite's cases, measurements appended to the results */
async function runRounds(title: string, cases: BenchCase[], plan: Plan, progress: Progress, res: RunResults) {
  for (let r = 0; r < plan.rounds; r++) {
    progress.phase(`${title} round ${r + 1}/${plan.rounds}`);
    gc();
    const ms = await runRound(`${title}-round${r + 1}`, cases, r, plan.cases, {
      saveDir: BENNY,
      onCase: (name) => progress.step(name),
    });
    res.measurements.push(...ms);
  }
}

/* inKernel: the null-sink and loan-cost suites, on one kernel, checked for leaks afterwards */
async function inKernel(plan: Plan, only: SuiteName[], progress: Progress, res: RunResults) {
  const b = await setupSink(res.autoThreshold ?? Number.POSITIVE_INFINITY);
  if (only.includes('null-sink')) {
    await runRounds(
      'null-sink',
      sinkCases(b, plan.sizes, plan.crossoverSizes, plan.batchBytes['null-sink']),
      plan,
      progress,
      res,
    );
  }
  if (only.includes('loan-cost')) {
    await runRounds(
      'loan-cost',
      loanCostCases(b, plan.loanPages, plan.loanCostBatchPages),
      plan,
      progress,
      res,
    );
  }
  const loaned = b.kernel.stats().loanedPages;
  const kva = mbufStats(b.kernel).kvaPagesInUse;
  if (loaned !== 0 || kva !== 0)
    throw new Error(`in-kernel suites left ${loaned} pages on loan, ${kva} kva pages reserved`);
  b.kernel.checkInvariants();
}

async function tcpSuite(plan: Plan, progress: Progress, res: RunResults) {
  progress.phase('tcp: starting the receiver');
  const b = await setupTcp();
  try {
    await runRounds('tcp', tcpCases(b, plan.sizes, plan.batchBytes.tcp), plan, progress, res);
  } finally {
    progress.phase('tcp: checking and closing');
    res.tcpCheck = await closeTcp(b, plan.quick ? 32 * MiB : 128 * MiB);
  }
}

async function echoSuite(plan: Plan, progress: Progress, res: RunResults) {
  progress.phase('echo: starting the servers');
  const b = await setupEcho();
  try {
    await runRounds('echo', echoCases(b, plan.sizes, plan.batchBytes.echo), plan, progress, res);
  } finally {
    progress.phase('echo: checking and closing');
    const written = {
      copy: b.clients.copy.written,
      loan: b.clients.loan.written,
      raw: b.clients.raw.written,
    };
    const check = await closeEcho(b);
    res.echoCheck = check === null ? null : { ...check, written };
  }
}

/* attempt: run one suite; a failure is recorded and the run goes on */
async function attempt(name: string, res: RunResults, fn: () => Promise<void>): Promise<void> {
  try {
    await fn();
  } catch (err) {
    res.errors.push(`${name}: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  }
}

/* writeOutputs: latest.json (atomically) and chart.svg */
function writeOutputs(res: RunResults): void {
  mkdirSync(RESULTS, { recursive: true });
  const rows = buildRows(res);
  writeFileSync(`${RESULTS}latest.json.tmp`, `${JSON.stringify(rows, null, 2)}\n`);
  renameSync(`${RESULTS}latest.json.tmp`, `${RESULTS}latest.json`);
  const when = new Date().toISOString().slice(0, 16).replace('T', ' ');
  writeFileSync(`${RESULTS}chart.svg`, renderChart(rows, `${res.quick ? 'quick' : 'full'} run, ${when} UTC`));
}

/* startWatchdog: stop the run (writing what it has) on a stall or past the deadline */
function startWatchdog(plan: Plan, progress: Progress, res: RunResults): NodeJS.Timeout {
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
      writeOutputs(res);
      process.stdout.write(renderReport(res));
    } finally {
      process.exit(2);
    }
  }, 1000);
  t.unref();
  return t;
}

function cleanBennyDir(): void {
  mkdirSync(BENNY, { recursive: true });
  for (const f of readdirSync(BENNY)) if (f.endsWith('.json')) rmSync(`${BENNY}${f}`);
}

async function main(): Promise<number> {
  const cli = parseCli(process.argv.slice(2));
  const plan = makePlan(cli.quick);
  if (cli.rounds !== null) plan.rounds = cli.rounds;
  cleanBennyDir();
  const res: RunResults = {
    quick: plan.quick,
    rounds: plan.rounds,
    measurements: [],
    autoThreshold: null,
    soak: null,
    tcpCheck: null,
    echoCheck: null,
    errors: [],
  };
  if (typeof (globalThis as { gc?: unknown }).gc !== 'function') {
    process.stderr.write('bench: run node with --expose-gc (pnpm bench does) for the soak heap figures\n');
  }
  const progress = new Progress(countSteps(plan, cli.only));
  const watchdog = startWatchdog(plan, progress, res);
  try {
    progress.phase('calibrating the auto threshold (sosendAutoThreshold)');
    await attempt('auto threshold', res, async () => {
      res.autoThreshold = await sosendAutoThreshold();
    });
    if (cli.only.includes('null-sink') || cli.only.includes('loan-cost')) {
      await attempt('in-kernel', res, () => inKernel(plan, cli.only, progress, res));
    }
    if (cli.only.includes('soak')) {
      progress.phase(`soak: ${plan.soakSends.toLocaleString('en-US')} in-kernel 4 KiB loans`);
      await attempt('soak', res, async () => {
        res.soak = await runSoak(plan.soakSends, (f) => progress.info(`${Math.round(f * 100)}%`));
        progress.step('soak done');
      });
    }
    if (cli.only.includes('tcp')) await attempt('tcp', res, () => tcpSuite(plan, progress, res));
    if (cli.only.includes('echo')) await attempt('echo', res, () => echoSuite(plan, progress, res));
  } finally {
    clearInterval(watchdog);
    killAll();
  }
  writeOutputs(res);
  progress.clear();
  process.stdout.write(renderReport(res));
  process.stdout.write(
    `\nwrote ${RESULTS}latest.json, ${RESULTS}chart.svg and benny's JSON in ${BENNY} (${progress.elapsed.toFixed(0)} s)\n`,
  );
  return res.errors.length === 0 ? 0 : 1;
}

main().then(
  (code) => {
    process.exitCode = code;
    setTimeout(() => process.exit(code), 3_000).unref();
  },
  (err) => {
    killAll();
    process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  },
);
