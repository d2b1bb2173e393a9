/*
 * transfer-cost.ts: what one page costs to receive by page transfer, against what it costs to copy it
 * out -- in-kernel, no network: the receive path's two ways of putting n pages the kernel holds into a
 * process's buffer, as soreceive does them.
 *
 * `transfer`: uvmTransferCheck of the buffer, uvmPglistAlloc of a fresh run of n pages (the receive
 * area's replacement for the pages it gives away; not zeroed, as the receive area asks), then
 * uvmPageTransfer of that run into the process's private buffer: each page becomes an anon's, mapped
 * writable, and the page the slot held before is freed. `copy`: Proc.copyoutPhys of the same n pages
 * from a kernel run (one RAM-to-RAM move per piece, through the MMU's checks) -- what recv does
 * instead. Both in ns per page, at n = 16 and 256.
 *
 * The honest bar is transfer <= copy per page: page transfer exists to save the copy, so if moving a
 * page costs more bookkeeping than copying 4 KiB, the zero-copy receive cannot win.
 */

import type { Proc, VmPage } from '@loanout/core';
import {
  Kernel,
  PAGE_SIZE,
  uvmPageTransfer,
  uvmPglistAlloc,
  uvmPglistFree,
  uvmTransferCheck,
} from '@loanout/core';
import type { BenchCase } from './runner.js';
import type { Mode } from './suites.js';

export interface TransferBench {
  kernel: Kernel;
  /* the receiving process and its private buffer, big enough for the largest n */
  proc: Proc;
  va: number;
  /* the kernel pages copy copies from (filled) */
  source: VmPage[];
}

/*
 * setupTransfer: a kernel, a process with a resident private buffer of maxPages pages, and a filled
 * kernel run of maxPages pages to copy from.
 */
export async function setupTransfer(maxPages: number): Promise<TransferBench> {
  const kernel = new Kernel({ physPages: 8192, swapPages: 0 });
  const proc = kernel.createProcess();
  const va = proc.mmap(maxPages * PAGE_SIZE);
  await proc.write(va, Buffer.alloc(maxPages * PAGE_SIZE, 1));
  const source = uvmPglistAlloc(kernel.uvm, maxPages, { zero: false });
  if (source === null) throw new Error('transfer-cost: no run for the source pages');
  const ram = kernel.uvm.ram.bytes;
  for (let i = 0; i < maxPages * PAGE_SIZE; i++) ram[source[0].frame * PAGE_SIZE + i] = (i * 131) & 0xff;
  return { kernel, proc, va, source };
}

/*
 * teardownTransfer: give everything back and check the kernel
 * => throws if a page was left behind (every page free once the process is gone)
 */
export function teardownTransfer(b: TransferBench): void {
  uvmPglistFree(b.source);
  b.proc.exit();
  b.kernel.checkInvariants();
  const s = b.kernel.stats();
  if (s.freePages !== s.physPages)
    throw new Error(`transfer-cost: ${s.freePages} pages free of ${s.physPages}`);
}

/*
 * transferCostCases: transfer and copy cases for each page count.
 * => one operation is ceil(batchPages / pages) calls; size = pages, bytesPerSend = pages * PAGE_SIZE
 * => every page count must be at most the bench's maxPages
 */
export function transferCostCases(b: TransferBench, pageCounts: number[], batchPages: number): BenchCase[] {
  const out: BenchCase[] = [];
  for (const pages of pageCounts) {
    for (const mode of ['transfer', 'copy'] as Mode[]) out.push(transferCostCase(b, mode, pages, batchPages));
  }
  return out;
}

function transferCostCase(b: TransferBench, mode: Mode, pages: number, batchPages: number): BenchCase {
  const calls = Math.max(1, Math.ceil(batchPages / pages));
  const once = mode === 'transfer' ? transferOnce(b, pages) : copyOnce(b, pages);
  return {
    suite: 'transfer-cost',
    mode,
    size: pages,
    perOp: calls,
    bytesPerSend: pages * PAGE_SIZE,
    run: async () => {
      for (let i = 0; i < calls; i++) once();
    },
  };
}

/* transferOnce: a fresh run of n pages moved into the buffer, the pages it held freed */
function transferOnce(b: TransferBench, n: number): () => void {
  const { kernel, proc, va } = b;
  return () => {
    if (uvmTransferCheck(proc.map, va, n) !== null) throw new Error('transfer-cost: the buffer refused');
    const run = uvmPglistAlloc(kernel.uvm, n, { zero: false });
    if (run === null) throw new Error('transfer-cost: no run');
    uvmPageTransfer(proc.map, va, run);
  };
}

/* copyOnce: n pages of the kernel run copied out into the buffer, through the MMU */
function copyOnce(b: TransferBench, n: number): () => void {
  const { proc, va } = b;
  const ram = b.kernel.uvm.ram.bytes;
  const from = b.source[0].frame * PAGE_SIZE;
  const move = (at: number, done: number, len: number) => ram.copyWithin(at, from + done, from + done + len);
  return () => {
    if (proc.copyoutPhys(va, n * PAGE_SIZE, move) !== undefined)
      throw new Error('transfer-cost: copyout slept');
  };
}
