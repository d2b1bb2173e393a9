/*
 * soak.ts: a million loans, and nothing left behind.
 *
 * One process sends the same 4 KiB page to the null sink by loan, `sends` times in a row (mbufLoan,
 * sink, mFreem). A leak per send -- an mbuf, a page-table entry, a waiter, a trace record -- would show
 * as heap that grows with the count, so the heap is measured (after a full GC: node must run with
 * --expose-gc) at 10% of the run and at the end, and must stay flat within 10%. At the end every page
 * must be back: no page still on loan, no loan address space still reserved, and the kernel's own
 * audit (checkInvariants) must pass.
 */
import { Kernel } from '@loanout/core';
import { mbufStats } from '@loanout/mbuf';
import { type SinkBench, sendOnce } from './null-sink.js';

export interface SoakResult {
  sends: number;
  seconds: number;
  heapStartMiB: number;
  heapEndMiB: number;
  heapGrowthPct: number;
  /* pages still on loan at the end */
  pagesLeaked: number;
  /* loan kernel address space still reserved at the end */
  kvaPagesInUse: number;
  /* whether global.gc() was there (node --expose-gc); without it heap figures are rough */
  gc: boolean;
  /* what checkInvariants said: null if the kernel audit passed */
  invariantError: string | null;
}

/* heapAfterGc: heap in use, in MiB, after full collections when they are available */
function heapAfterGc(): number {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (gc !== undefined) {
    gc();
    gc();
  }
  return process.memoryUsage().heapUsed / (1024 * 1024);
}

/*
 * runSoak: `sends` in-kernel 4 KiB loan sends to the null sink, in a fresh kernel.
 * => onProgress(fraction done) now and then
 */
export async function runSoak(sends: number, onProgress: (done: number) => void): Promise<SoakResult> {
  const kernel = new Kernel({ physPages: 1024, swapPages: 0 });
  const proc = kernel.createProcess();
  const va = proc.mmap(4096);
  await proc.write(va, Buffer.alloc(4096, 0x6b));
  const b: SinkBench = { kernel, proc, va, threshold: 0 };
  const tenth = Math.max(1, Math.floor(sends / 10));
  const step = Math.max(1, Math.floor(sends / 100));
  let heapStart = 0;
  const t0 = performance.now();
  for (let i = 0; i < sends; i++) {
    if (i === tenth) heapStart = heapAfterGc();
    if (i % step === 0) onProgress(i / sends);
    await sendOnce(b, 'loan', 4096);
  }
  const seconds = (performance.now() - t0) / 1000;
  const heapEnd = heapAfterGc();
  const stats = kernel.stats();
  let invariantError: string | null = null;
  try {
    kernel.checkInvariants();
  } catch (err) {
    invariantError = (err as Error).message;
  }
  return {
    sends,
    seconds,
    heapStartMiB: heapStart,
    heapEndMiB: heapEnd,
    heapGrowthPct: (100 * (heapEnd - heapStart)) / heapStart,
    pagesLeaked: stats.loanedPages,
    kvaPagesInUse: mbufStats(kernel).kvaPagesInUse,
    gc: typeof (globalThis as { gc?: unknown }).gc === 'function',
    invariantError,
  };
}
