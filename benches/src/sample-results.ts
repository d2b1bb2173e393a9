/*
 * sample-results.ts: a small made-up run, for the unit tests of report.ts and chart.ts (made-up
 * figures, never a measurement).
 */
import type { RunResults } from './report.js';
import type { Measurement } from './stats.js';
import type { Mode, SuiteName } from './suites.js';

function m(suite: SuiteName, mode: Mode, size: number, round: number, mbps: number): Measurement {
  return {
    suite,
    mode,
    size,
    round,
    mbps,
    opsPerSec: (mbps * 1e6) / (suite === 'loan-cost' ? size * 4096 : size),
    samples: 4,
    rme: 10,
  };
}

/* lat: a latency measurement whose round trips are base, base+1, ..., base+n-1 µs */
function lat(mode: Mode, size: number, round: number, base: number, n: number): Measurement {
  const latencies = Array.from({ length: n }, (_, i) => base + i);
  const opsPerSec = 1e6 / (base + n / 2);
  return {
    suite: 'latency',
    mode,
    size,
    round,
    opsPerSec,
    mbps: (opsPerSec * size) / 1e6,
    samples: 5,
    rme: 3,
    latencies,
  };
}

/* sampleResults: three rounds of every suite at two sizes (latency: one), a soak, and the checks */
export function sampleResults(): RunResults {
  const ms: Measurement[] = [];
  for (let r = 0; r < 3; r++) {
    const f = r + 1;
    for (const size of [4096, 1 << 20]) {
      ms.push(
        m('null-sink', 'copy', size, r, 100),
        m('null-sink', 'loan', size, r, 100 + 100 * f),
        m('null-sink', 'auto', size, r, 150),
      );
      ms.push(
        m('tcp', 'copy', size, r, 100),
        m('tcp', 'loan', size, r, 120),
        m('tcp', 'auto', size, r, 110),
        m('tcp', 'raw', size, r, 130),
      );
      ms.push(m('echo', 'copy', size, r, 50), m('echo', 'loan', size, r, 80), m('echo', 'raw', size, r, 90));
    }
    /* loan-cost: opsPerSec = calls/s; 16 pages at 1.6e6 calls/s = 39 ns/page, 256 pages at 5e4 = 78 ns/page */
    const lc = (mode: Mode, size: number, opsPerSec: number): Measurement => ({
      suite: 'loan-cost',
      mode,
      size,
      round: r,
      opsPerSec,
      mbps: 0,
      samples: 6,
      rme: 2,
    });
    ms.push(lc('loan', 16, 1.6e6), lc('copy', 16, 1e5), lc('loan', 256, 5e4), lc('copy', 256, 5e3));
    /* latency at 64 B: copy 100..199 µs, loan 80..179, raw 50..149 (p50 = base + 49) */
    ms.push(lat('copy', 64, r, 100 + r, 100), lat('loan', 64, r, 80 + r, 100), lat('raw', 64, r, 50, 100));
  }
  return {
    quick: true,
    rounds: 3,
    measurements: ms,
    autoThreshold: 8192,
    soak: {
      sends: 1000,
      seconds: 0.5,
      heapStartMiB: 10,
      heapEndMiB: 10.2,
      heapGrowthPct: 2,
      pagesLeaked: 0,
      kvaPagesInUse: 0,
      gc: true,
      invariantError: null,
    },
    far: 'the sink, another process on 127.0.0.1',
    tcpCheck: { sent: 100, received: 100, receiverCpuPct: 30, senderCpuPct: 95, burstMbps: 1000 },
    recvCheck: { received: 100, sent: 100, copiedBytes: 50, transferredBytes: 50 },
    echoCheck: {
      copy: { written: 10, echoed: 10, loanedBytes: 0, copiedBytes: 10 },
      loan: { written: 20, echoed: 20, loanedBytes: 20, copiedBytes: 0 },
      raw: { written: 30, echoed: 30 },
    },
    latencyCheck: {
      copy: { written: 64, echoed: 64, loanedBytes: 0, copiedBytes: 64 },
      loan: { written: 64, echoed: 64, loanedBytes: 64, copiedBytes: 0 },
      raw: { written: 64, echoed: 64 },
    },
    errors: [],
  };
}
