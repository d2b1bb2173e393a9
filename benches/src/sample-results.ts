/*
 * sample-results.ts: a small made-up run, for the unit tests of report.ts and chart.ts (made-up
 * figures, never a measurement).
 */
import type { RunResults } from './report.js';
import type { Measurement, Mode, Suite } from './stats.js';

function m(suite: Suite, mode: Mode, size: number, round: number, mbps: number): Measurement {
  return {
    suite,
    mode,
    size,
    round,
    mbps,
    opsPerSec: (mbps * 1e6) / (suite === 'loan-cost' ? size * 4096 : size),
  };
}

/* sampleResults: three rounds of every suite at two sizes, a soak, and the checks */
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
    ms.push({ suite: 'loan-cost', mode: 'loan', size: 16, round: r, opsPerSec: 1.6e6, mbps: 0 });
    ms.push({ suite: 'loan-cost', mode: 'copy', size: 16, round: r, opsPerSec: 1e5, mbps: 0 });
    ms.push({ suite: 'loan-cost', mode: 'loan', size: 256, round: r, opsPerSec: 5e4, mbps: 0 });
    ms.push({ suite: 'loan-cost', mode: 'copy', size: 256, round: r, opsPerSec: 5e3, mbps: 0 });
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
    tcpCheck: { sent: 100, received: 100, receiverCpuPct: 30, senderCpuPct: 95, burstMbps: 1000 },
    echoCheck: {
      copy: { bytesEchoed: 10, loanedBytes: 0, copiedBytes: 10 },
      loan: { bytesEchoed: 20, loanedBytes: 20, copiedBytes: 0 },
      raw: { bytesEchoed: 30 },
      written: { copy: 10, loan: 20, raw: 30 },
    },
    errors: [],
  };
}
