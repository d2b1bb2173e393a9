/*
 * loan-cost.ts: what one page costs to loan and give back, against what it costs to copy.
 *
 * `loan`: uvmLoan(map, va, n * PAGE_SIZE, 'kernel') then uvmUnloanPages -- the bare UVM loanout of n
 * resident anonymous pages (A->K: write-protect every mapping, loanCount++, wire; then unwire and drop
 * the loan), without mbufs or kernel mappings. `copy`: mbufCopyin of the same n whole pages into 2 KiB
 * clusters, then mFreem -- what a send would do instead. Both are reported in ns per page, for n = 1
 * (one call's fixed cost dominates), 16 and 256 (the per-page cost, which should stay flat: the loan
 * loop must not allocate or await per page).
 *
 * One operation is a batch of calls covering about the same number of pages at every n, so the
 * harness's per-operation overhead weighs the same on each.
 */
import { PAGE_SIZE, uvmLoan, uvmUnloanPages } from '@loanout/core';
import { mbufCopyin, mFreem } from '@loanout/mbuf';
import type { SinkBench } from './null-sink.js';
import type { BenchCase } from './runner.js';
import type { Mode } from './suites.js';

/*
 * loanCostCases: loan and copy cases for each page count.
 * => one operation is ceil(batchPages / pages) calls; size = pages, bytesPerSend = pages * PAGE_SIZE
 * => pages * PAGE_SIZE must fit the bench's 1 MiB buffer
 */
export function loanCostCases(b: SinkBench, pageCounts: number[], batchPages: number): BenchCase[] {
  const out: BenchCase[] = [];
  for (const pages of pageCounts) {
    for (const mode of ['loan', 'copy'] as Mode[]) out.push(loanCostCase(b, mode, pages, batchPages));
  }
  return out;
}

function loanCostCase(b: SinkBench, mode: Mode, pages: number, batchPages: number): BenchCase {
  const calls = Math.max(1, Math.ceil(batchPages / pages));
  const len = pages * PAGE_SIZE;
  const once =
    mode === 'loan'
      ? async () => uvmUnloanPages(await uvmLoan(b.proc.map, b.va, len, 'kernel'))
      : async () => mFreem(await mbufCopyin(b.proc, b.va, len));
  return {
    suite: 'loan-cost',
    mode,
    size: pages,
    perOp: calls,
    bytesPerSend: len,
    run: async () => {
      for (let i = 0; i < calls; i++) await once();
    },
  };
}
