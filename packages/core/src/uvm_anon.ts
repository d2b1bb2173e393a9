/*
 * uvm_anon.ts: anonymous memory, one anon per page of it.
 *
 * An anon holds one page of anonymous data: resident in `page`, or on swap in `swslot`, or both.
 * `ref` counts the amap slots that hold it plus any loans of it to other anons (A->A). Its page is
 * usually its own (anonOwns set), but after an O->A loan it is the object's page, borrowed; and an anon
 * may *adopt* the page once the object has let go of it (uvm_anon_lockloanpg in NetBSD).
 */
import { Prot } from './param.js';
import type { Uvm } from './uvm.js';
import { PG_BUSY, PG_RELEASED, uvmPageFree, type VmPage } from './uvm_page.js';

/**
 * Anon: an anonymous page's identity (NetBSD's vm_anon), held by amap slots -- and by loans to anons:
 * uvmLoan(..., 'anon') returns them. Only the kernel changes it.
 *
 * @hideconstructor
 */
export class Anon {
  /** the VM system the anon belongs to */
  readonly uvm: Uvm;
  /** @readonly references: amap slots and loans that hold the anon */
  ref = 1;
  /** @readonly its page while resident (owned, or borrowed from an object: O->A), else null */
  page: VmPage | null = null;
  /** @readonly swap slot, 0 = none */
  swslot = 0;
  /** @internal scratch for uvmUnloanAnons' check of a whole call before it changes anything: always 0 between calls */
  unloanMark = 0;

  /** @internal the kernel makes anons (uvmAnonAlloc) */
  constructor(uvm: Uvm) {
    this.uvm = uvm;
  }
}

/** uvmAnonAlloc: a new anon with one reference and no data (uvm_analloc). */
export function uvmAnonAlloc(uvm: Uvm): Anon {
  uvm.anons++;
  return new Anon(uvm);
}

/**
 * uvmAnonAdopt: if the anon's page was loaned to it by an object that has since let go of it, the
 * anon becomes its owner (the loan is turned into ownership: loanCount--, anonOwns set).
 * => returns the anon's page (or null)
 */
export function uvmAnonAdopt(anon: Anon): VmPage | null {
  const pg = anon.page;
  if (pg !== null && pg.uobject === null && !pg.anonOwns) {
    pg.loanCount--;
    pg.anonOwns = true;
    anon.uvm.trace('adopt', pg);
  }
  return pg;
}

/**
 * uvmAnonUnref: drop one reference; the last one frees the anon.
 */
export function uvmAnonUnref(anon: Anon): void {
  if (--anon.ref === 0) uvmAnonFree(anon);
}

/**
 * uvmAnonFree: free an anon whose last reference is gone (uvm_anfree).
 * => a page borrowed from an object (O->A) is handed back: the anon's loan ends
 * => a page of its own is freed -- or orphaned, if it is on loan to the kernel
 * => a BUSY page (pageout or pagein in flight) is marked RELEASED; the I/O's owner finishes the job
 *    with uvmAnonRelease
 */
export function uvmAnonFree(anon: Anon): void {
  const uvm = anon.uvm;
  const pg = anon.page !== null && anon.page.loanCount > 0 ? uvmAnonAdopt(anon) : anon.page;
  if (pg !== null) {
    if (pg.uobject !== null) {
      pg.loanCount--;
      pg.uanon = null;
      anon.page = null;
      pg.uobject.loanReturned(pg);
    } else {
      uvm.mmu.pageProtect(pg.frame, Prot.NONE);
      if (pg.flags & PG_BUSY) {
        pg.flags |= PG_RELEASED;
        return;
      }
      uvmPageFree(pg);
    }
  }
  uvmAnonRelease(anon);
}

/**
 * uvmAnonRelease: the last of a freed anon: its page (if still here) and its swap slot.
 */
export function uvmAnonRelease(anon: Anon): void {
  const uvm = anon.uvm;
  if (anon.page !== null) uvmPageFree(anon.page);
  if (anon.swslot !== 0) {
    uvm.swap.free(anon.swslot);
    anon.swslot = 0;
  }
  uvm.anons--;
}
