/*
 * A trace listener cannot free a page a transfer is moving. uvmPageTransfer once called listeners
 * between pages, and a listener can call back into the kernel: one that freed a page still waiting
 * its turn (found by an attack) got it mapped writable into the process while it sat on the free
 * lists -- memory the next allocation hands to someone else. A transfer now holds its events until
 * every page has moved (Uvm.withTracesHeld): by then the page is the process's, and freeing it as
 * kernel memory is refused with a KernelPanic, nothing changed.
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

it('a trace listener that frees a page of a transfer at its first event is refused: the page has moved', async () => {
  const k = new Kernel({ physPages: 32, swapPages: 0 });
  const p = k.createProcess();
  const va = p.mmap(2 * P);
  const run = uvmPglistAlloc(k.uvm, 2)!;
  run[1].bytes().fill(7);
  let refused: unknown = null;
  let events = 0;
  k.onTrace((ev) => {
    if (ev.kind !== 'transfer' || events++ > 0) return;
    try {
      uvmPglistFree([run[1]]);
    } catch (err) {
      refused = err;
    }
  });
  uvmPageTransfer(p.map, va, run);
  expect(events).toBe(2);
  expect(refused).toBeInstanceOf(KernelPanic);
  /* the page is the process's, mapped, not free; its bytes are the process's to read */
  expect(p.map.pmap.frames[(va + P) / P] - 1).toBe(run[1].frame);
  expect(k.uvm.free.blockOf(run[1].frame)).toBeNull();
  expect((await p.read(va + P, P)).every((b) => b === 7)).toBe(true);
  k.checkInvariants();
  p.exit();
  k.checkInvariants();
});
