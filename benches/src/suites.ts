/*
 * suites.ts: what the benchmark measures, by name -- every suite and every mode in one table, so the
 * command line, the tables, the chart, the records and the comparison all follow it.
 *
 * A suite is a family of cases run in alternating rounds: its `kind` says what figure its rows carry
 * (MB/s, ns per page, round-trip latency, or the soak's accounting) and so how it is tabled, charted
 * and compared; its `place` says where its far side is -- `kernel` suites run entirely in this
 * process, `net` suites talk to a sink (a child process on 127.0.0.1, or another host with --peer);
 * its `modes` are its columns, in table order.
 *
 * Adding a suite: its name in SUITE_NAMES, its entry here, and its runner in main.ts (RUNNERS; the
 * compiler asks for both). Adding a mode: its name in MODES (chart.ts then asks for its colour), the
 * mode in the suites that measure it, and the case that runs it; if the far side must do something
 * new for it, a service in sink.ts (SERVICES). Nothing here imports a measuring module: it is pure.
 */

/** every way of moving bytes the suites compare */
export const MODES = ['copy', 'loan', 'auto', 'transfer', 'zerocopy', 'raw'] as const;
export type Mode = (typeof MODES)[number];

/** every suite, in the order a run goes through them */
export const SUITE_NAMES = [
  'null-sink',
  'loan-cost',
  'transfer-cost',
  'soak',
  'tcp',
  'recv',
  'echo',
  'latency',
] as const;
export type SuiteName = (typeof SUITE_NAMES)[number];

/** what figure a suite's rows carry */
export type SuiteKind = 'throughput' | 'per-page' | 'latency' | 'soak';

export interface SuiteInfo {
  kind: SuiteKind;
  /** kernel: all in this process; net: against a sink (a local child, or --peer) */
  place: 'kernel' | 'net';
  /** the modes measured, in table order */
  modes: readonly Mode[];
  /** the table's heading; `far` says where the sink is */
  title: (far: string) => string;
}

export const SUITES: Record<SuiteName, SuiteInfo> = {
  'null-sink': {
    kind: 'throughput',
    place: 'kernel',
    modes: ['copy', 'loan', 'auto'],
    title: () => 'null-sink: in-kernel send to a sink touching one byte per page',
  },
  'loan-cost': {
    kind: 'per-page',
    place: 'kernel',
    modes: ['loan', 'copy'],
    title: () =>
      'loan-cost: uvmLoan(kernel)+uvmUnloanPages vs mbufCopyin of whole pages (ns/page: lower is better)',
  },
  'transfer-cost': {
    kind: 'per-page',
    place: 'kernel',
    modes: ['transfer', 'copy'],
    title: () =>
      'transfer-cost: uvmPglistAlloc+uvmPageTransfer (old pages freed) vs Proc.copyoutPhys of whole pages (ns/page: lower is better)',
  },
  soak: {
    kind: 'soak',
    place: 'kernel',
    modes: ['loan'],
    title: () => 'soak: in-kernel 4 KiB loans, nothing left behind',
  },
  tcp: {
    kind: 'throughput',
    place: 'net',
    modes: ['copy', 'loan', 'auto', 'raw'],
    title: (far) => `tcp: loanout kernel sender -> node:net receiver in ${far}`,
  },
  recv: {
    kind: 'throughput',
    place: 'net',
    modes: ['copy', 'transfer', 'raw'],
    title: (far) =>
      `recv: node:net sender in ${far} -> loanout kernel receiver (recv of size bytes: copy, or page transfer)`,
  },
  echo: {
    kind: 'throughput',
    place: 'net',
    modes: ['copy', 'loan', 'zerocopy', 'raw'],
    title: (far) =>
      `echo: raw client <-> echo server in ${far}, streaming (MB/s each way; every server holds at most 1 MiB per connection)`,
  },
  latency: {
    kind: 'latency',
    place: 'net',
    modes: ['copy', 'loan', 'zerocopy', 'raw'],
    title: (far) =>
      `latency: ping-pong through the echo servers in ${far}, one message in flight\n` +
      '  (round trip in µs: lower is better, a ratio below 1 is faster; n: round trips timed, all rounds;\n' +
      '  percentiles over all of them, p50 min-max over rounds; sockperf reports half a round trip)',
  },
};

/** the suites --peer can run against another host */
export const NET_SUITES: readonly SuiteName[] = SUITE_NAMES.filter((s) => SUITES[s].place === 'net');

/**
 * baselines: the modes a mode of a suite is compared with, per round: copy (for every mode but copy
 * and raw) and raw, the ceiling (for every mode but raw), each when the suite measures it.
 * => [] for copy in a suite without raw, and always for raw
 */
export function baselines(suite: SuiteName, mode: Mode): Mode[] {
  const modes = SUITES[suite].modes;
  const out: Mode[] = [];
  if (mode !== 'copy' && mode !== 'raw' && modes.includes('copy')) out.push('copy');
  if (mode !== 'raw' && modes.includes('raw')) out.push('raw');
  return out;
}
