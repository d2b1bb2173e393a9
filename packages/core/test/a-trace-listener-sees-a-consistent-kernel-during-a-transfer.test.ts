/*
 * A trace listener is called in the middle of the kernel's work, and it may look at the kernel: every
 * event a page transfer emits -- 'transfer' for each page, and 'orphan' when an old page on loan to
 * the kernel loses its owner -- must find the books balanced (kernel.checkInvariants()).
 */
import { expect, it } from 'vitest';
import { Kernel, PAGE_SIZE, uvmLoan, uvmPageTransfer, uvmPglistAlloc, uvmUnloanPages } from '../src/index.js';
import { pattern } from './helpers.js';

const P = PAGE_SIZE;

it('a listener checking the invariants at every event of a transfer over loaned pages finds them kept', async () => {
  const k = new Kernel({ physPages: 64, swapPages: 0 });
  const p = k.createProcess();
  const va = p.mmap(2 * P);
  await p.write(va, pattern(2 * P, 1));
  const loans = await uvmLoan(p.map, va, 2 * P, 'kernel');
  const broken: string[] = [];
  const kinds: string[] = [];
  k.onTrace((ev) => {
    kinds.push(ev.kind);
    try {
      k.checkInvariants();
    } catch (err) {
      broken.push(`${ev.kind}: ${(err as Error).message}`);
    }
  });
  uvmPageTransfer(p.map, va, uvmPglistAlloc(k.uvm, 2)!);
  expect(kinds).toContain('orphan');
  expect(broken).toEqual([]);
  expect(Buffer.concat(loans.map((pg) => Buffer.from(pg.bytes())))).toEqual(pattern(2 * P, 1));
  uvmUnloanPages(loans);
  k.checkInvariants();
});
