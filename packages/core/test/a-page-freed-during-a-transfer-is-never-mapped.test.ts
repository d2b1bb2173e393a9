/*
 * uvmPageTransfer calls trace listeners between pages, and a listener can call back into the kernel.
 * If one frees a page still waiting its turn in the transfer (a caller that broke the contract), the
 * transfer must notice -- a KernelPanic, as uvmPageRemove's check gave -- and never map a free page
 * into the process: a free page mapped writable is memory the next allocation hands to someone else.
 */
import { expect, it } from 'vitest';
import {
  Kernel,
  KernelPanic,
  PAGE_SIZE,
  uvmPageTransfer,
  uvmPglistAlloc,
  uvmPglistFree,
} from '../src/index.js';

const P = PAGE_SIZE;

it('a page freed by a trace listener half-way through a transfer is refused, never mapped free', () => {
  const k = new Kernel({ physPages: 32, swapPages: 0 });
  const p = k.createProcess();
  const va = p.mmap(2 * P);
  const run = uvmPglistAlloc(k.uvm, 2)!;
  let freed = false;
  k.onTrace((ev) => {
    if (ev.kind === 'transfer' && !freed) {
      freed = true;
      uvmPglistFree([run[1]]);
    }
  });
  let threw: unknown = null;
  try {
    uvmPageTransfer(p.map, va, run);
  } catch (err) {
    threw = err;
  }
  expect(freed).toBe(true);
  if (threw === null) {
    /* not refused: then the books must still balance and the freed frame must not be mapped */
    k.checkInvariants();
  } else {
    expect(threw).toBeInstanceOf(KernelPanic);
  }
  /* whatever happened, the free page is not mapped into the process */
  const frames = [0, 1].map((i) => p.map.pmap.frames[(va + i * P) / P] - 1);
  expect(frames).not.toContain(run[1].frame);
});
