/*
 * latency.ts: how long one message takes there and back -- a ping-pong through the sink's echo
 * servers, one message in flight, in the manner of sockperf's ping-pong test.
 *
 * The client is the echo suite's (echo.ts): plain node:net, TCP_NODELAY, writing one message of `size`
 * bytes and waiting until all of it has come back before writing the next. One benchmark operation is
 * one round trip; besides benny's figure (round trips per second) each round trip is timed on its own
 * (process.hrtime, from before the write to the last byte back), so the record can give percentiles:
 * p50, p99, p99.9 over every round trip of the run (rows.ts). Times are whole round trips: sockperf
 * prints half of one, so halve these to compare with it.
 *
 * The servers are the same three for every mode (the sink's echo-copy, echo-loan and echo-raw), so a
 * mode's latency is its server's work plus the same path both ways.
 */

import type { EchoBench } from './echo.js';
import type { BenchCase } from './runner.js';
import { SUITES } from './suites.js';

/**
 * latencyCases: every latency mode at each message size; an operation is one timed round trip.
 * => keep: at most this many round trips kept per case between two drains (the rest run, untimed)
 */
export function latencyCases(b: EchoBench, sizes: readonly number[], keep: number): BenchCase[] {
  const out: BenchCase[] = [];
  for (const size of sizes) {
    for (const mode of SUITES.latency.modes) {
      const client = b.clients[mode]!;
      const view = b.outbuf.subarray(0, size);
      let times: number[] = [];
      out.push({
        suite: 'latency',
        mode,
        size,
        perOp: 1,
        bytesPerSend: size,
        run: async () => {
          const t0 = process.hrtime.bigint();
          await client.exchange(view, 1, size);
          if (times.length < keep) times.push(Number(process.hrtime.bigint() - t0) / 1e3);
        },
        drain: () => {
          const t = times;
          times = [];
          return t;
        },
      });
    }
  }
  return out;
}
