/*
 * null-sink.ts: the kernel's own cost of a send, with no network at all.
 *
 * A process fills a 1 MiB buffer once; each send turns `size` bytes of it into an mbuf chain -- by copy
 * (mbufCopyin: 2 KiB clusters, filled through the MMU) or by loan (mbufLoan: the pages loaned to the
 * kernel, wired, mapped read-only) -- hands the chain to a sink that reads one byte per page of data
 * (as a device that DMAs the data would touch it: the bytes must be reachable, nobody copies them),
 * and frees it (mFreem: clusters back to the pool, loans ended). `auto` does what the sockets layer's
 * auto mode does: loan from its calibrated threshold (sosendAutoThreshold) up, copy below.
 *
 * What differs between the modes is exactly the kernel work of building and freeing the chain, so
 * the loan/copy ratio here is the ceiling of what loaning can win; TCP (tcp.ts) shows how much of it
 * survives a real network stack.
 */
import { Kernel, PAGE_SIZE, type Proc } from '@loanout/core';
import { type Mbuf, mbufCopyin, mbufLoan, mFreem } from '@loanout/mbuf';
import { MiB, sendsPerOp } from './plan.js';
import type { BenchCase } from './runner.js';
import type { Mode } from './suites.js';

export interface SinkBench {
  kernel: Kernel;
  proc: Proc;
  va: number;
  /* the auto mode's threshold in bytes */
  threshold: number;
}

/* what the sink read, kept in module state so that the reads can't be optimised away */
let sunk = 0;

/*
 * sink: read one byte per page of the chain's data (at data offsets 0, 4096, 8192, ...).
 * => returns the number of bytes the chain holds
 */
export function sink(m: Mbuf): number {
  let pos = 0;
  let next = 0;
  for (let x: Mbuf | null = m; x !== null; x = x.next) {
    const end = pos + x.len;
    for (; next < end; next += PAGE_SIZE) sunk ^= x.view[next - pos];
    pos = end;
  }
  return pos;
}

/*
 * setupSink: a kernel and a process with a filled 1 MiB buffer to send from.
 * => threshold: the bytes from which `auto` loans
 */
export async function setupSink(threshold: number): Promise<SinkBench> {
  const kernel = new Kernel({ physPages: 8192, swapPages: 0 });
  const proc = kernel.createProcess();
  const va = proc.mmap(MiB);
  const fill = Buffer.alloc(MiB);
  for (let i = 0; i < MiB; i++) fill[i] = (i * 131) & 0xff;
  await proc.write(va, fill);
  return { kernel, proc, va, threshold };
}

/*
 * sendOnce: one in-kernel send of `size` bytes by `mode` to the null sink.
 */
export async function sendOnce(b: SinkBench, mode: Mode, size: number): Promise<void> {
  const loan = mode === 'loan' || (mode === 'auto' && size >= b.threshold);
  const m = loan ? await mbufLoan(b.proc, b.va, size) : await mbufCopyin(b.proc, b.va, size);
  sink(m);
  mFreem(m);
}

/*
 * sinkCases: the null-sink cases: copy, loan, auto at each size, plus copy and loan at each
 * sub-page crossover size.
 * => one operation is ceil(batch / size) sends
 */
export function sinkCases(
  b: SinkBench,
  sizes: number[],
  crossoverSizes: number[],
  batch: number,
): BenchCase[] {
  const out: BenchCase[] = [];
  const modes: Mode[] = ['copy', 'loan', 'auto'];
  for (const size of crossoverSizes)
    for (const mode of modes.slice(0, 2)) out.push(sinkCase(b, mode, size, batch));
  for (const size of sizes) for (const mode of modes) out.push(sinkCase(b, mode, size, batch));
  return out;
}

function sinkCase(b: SinkBench, mode: Mode, size: number, batch: number): BenchCase {
  const n = sendsPerOp(size, batch);
  return {
    suite: 'null-sink',
    mode,
    size,
    perOp: n,
    bytesPerSend: size,
    run: async () => {
      for (let i = 0; i < n; i++) await sendOnce(b, mode, size);
    },
  };
}

/* sinkChecksum: what the sink read (for nothing but keeping the reads alive) */
export function sinkChecksum(): number {
  return sunk;
}
