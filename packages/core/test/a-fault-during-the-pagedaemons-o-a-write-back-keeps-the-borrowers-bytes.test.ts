/*
 * The pagedaemon takes a dirty page lent O->A from its object in two halves: it writes the page back
 * through the object's pager (the page BUSY, the I/O asleep), then takes the clean page from the
 * object and gives it to the anon (loan-break event 2). A fault on the page that comes in during the
 * write-back sleeps on the BUSY page; when it wakes, the page must either still be the object's or be
 * gone from it -- never handed to the fault and then taken from the object under it. Otherwise the
 * fault maps, writable, a page that now belongs to the borrowing anon: the process's next write lands
 * in the borrower's bytes, and its mapping no longer matches its object.
 */
import { describe, expect, it } from 'vitest';
import {
  type IoEvent,
  Kernel,
  PAGE_SIZE,
  uvmLoan,
  uvmLoanAnonPages,
  uvmUnloanAnons,
  uvmUnloanPages,
} from '../src/index.js';
import { expectAllFree, fill, hog, hookOnce, objectPage } from './loan-helpers.js';

const P = PAGE_SIZE;

describe('a fault during the pagedaemon’s write-back of an O->A page', () => {
  for (const access of ['read', 'write'] as const) {
    it(`a ${access} fault that slept on the page keeps the borrower's bytes and the process's own`, async () => {
      const k = new Kernel({ physPages: 16, swapPages: 64 });
      const p = k.createProcess();
      const va = p.mmap(P, { shared: true });
      await p.write(va, fill(0x11));
      const lent = objectPage(p, va)!;
      const [anon] = await uvmLoan(p.map, va, P, 'anon');
      let faulting: Promise<unknown> | null = null;
      /* in the middle of the write-back of the lent page to swap, the process touches the page */
      const hook = hookOnce(
        k,
        (ev: IoEvent) => ev.kind === 'swapout' && ev.frame === lent.frame,
        () => {
          faulting = access === 'read' ? p.read(va, P) : p.write(va, fill(0x22, 8));
        },
      );
      const h = await hog(k, 24);
      await k.idle();
      expect(hook.fired()).toBe(1);
      expect(faulting).not.toBeNull();
      await faulting;
      k.checkInvariants();
      /* the page left the object for the anon; the process's page is another one */
      expect(anon.page === null || anon.page.uobject === null).toBe(true);
      await p.write(va + 100, fill(0x33, 8));
      k.checkInvariants();
      /* what the borrower holds (brought back from swap if the pagedaemon put it there) */
      const [borrowed] = await uvmLoanAnonPages([anon]);
      expect(borrowed.bytes().equals(fill(0x11))).toBe(true);
      uvmUnloanPages([borrowed]);
      const mine = await p.read(va, P);
      const want = fill(access === 'read' ? 0x11 : 0x22);
      if (access === 'write') fill(0x11).copy(want, 8, 8);
      fill(0x33, 8).copy(want, 100);
      expect(mine.equals(want)).toBe(true);
      h.exit();
      uvmUnloanAnons([anon]);
      await expectAllFree(k);
    });
  }
});
