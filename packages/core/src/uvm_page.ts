/*
 * uvm_page.ts: the vm_page, one per physical frame, and the page queues.
 *
 * A page is free (in a block of the free lists, uvm_pgfl.ts; no owner) or allocated. An allocated page has an owner -- an
 * object (uobject + offset) or an anon (uanon with anonOwns set, NetBSD's PQ_ANON) -- or it is an
 * *orphan*: its owner let go of it while it was on loan, and the last unloan frees it. A page loaned
 * from an object to an anon (O->A) has both uobject and uanon, with anonOwns clear: the object owns it,
 * the anon borrows it.
 *
 * Allocated pages sit on the active or inactive queue, where the pagedaemon looks for pages to
 * reclaim. Wired pages (wireCount > 0, e.g. every page loaned to the kernel) are never reclaimed: the
 * pagedaemon passes over them. Unlike NetBSD, which takes a page off its queue when it is wired, we
 * leave it where it is -- wiring is on the loan's hot path, and two list operations per page per loan
 * were a seventh of its cost. (Kernel memory and orphans, which no queue needs, sit on none.) A page being filled or emptied by I/O is BUSY; whoever wants it sets
 * WANTED and waits; whoever wanted to free it meanwhile sets RELEASED and the I/O's owner frees it.
 *
 * The queues are intrusive doubly linked lists threaded through the pages themselves, so nothing on
 * the hot paths (wire, unwire, activate) allocates; the free lists use the same links (a free page is
 * on no paging queue).
 */
import { KernelError, panic } from './errors.js';
import { Prot } from './param.js';
import type { Uvm } from './uvm.js';
import type { Anon } from './uvm_anon.js';
import type { UvmObject } from './uvm_object.js';

/** pg.flags: the page is busy (being read in, written out or set up); whoever wants it sets WANTED and waits */
export const PG_BUSY = 0x01;
/** pg.flags: someone sleeps until the page is unbusied (uvmPageWaitBusy) */
export const PG_WANTED = 0x02;
/** pg.flags: the page was freed while BUSY; the owner of the I/O frees it when it ends */
export const PG_RELEASED = 0x04;
/** pg.flags: the page's bytes are not valid yet (just allocated, not yet filled) */
export const PG_FAKE = 0x08;
/** pg.flags: the page's bytes are those of its backing store (a file, swap): no write-back needed */
export const PG_CLEAN = 0x10;

/** pg.queue: on no paging queue (wired kernel memory, orphans, a page being set up) */
export const PQ_NONE = 0;
/** pg.queue: in a block of the free lists (uvm_pgfl.ts) */
export const PQ_FREE = 1;
/** pg.queue: on the active queue */
export const PQ_ACTIVE = 2;
/** pg.queue: on the inactive queue, where the pagedaemon looks for pages to reclaim */
export const PQ_INACTIVE = 3;
/** the names of the PQ_* queues, by number */
export const QUEUE_NAMES = ['none', 'free', 'active', 'inactive'] as const;

/**
 * VmPage: one physical frame (NetBSD's struct vm_page). Users receive pages (from uvmLoan,
 * uvmPglistAlloc) and may look at them; only the kernel changes them.
 *
 * The fields users may read are tagged readonly for TSDoc, and the published declarations make them
 * `readonly` (scripts/dts-finish.mjs): a user who wrote `pg.loanCount` would corrupt the kernel. The
 * page's flags, queue and links are internal, left out of the declarations: `frameState(pg)` and
 * `kernel.frameInfo(frame)` show them.
 *
 * @hideconstructor
 */
export class VmPage {
  /** the VM system the page belongs to */
  readonly uvm: Uvm;
  /** the physical frame number: the page's bytes are RAM [frame * PAGE_SIZE, (frame + 1) * PAGE_SIZE) */
  readonly frame: number;
  /** @internal PG_* bits */
  flags = 0;
  /** @internal the PQ_* queue the page is on */
  queue = PQ_FREE;
  /**
   * @readonly PQ_ANON: the anon in `uanon` owns this page (clear for an O->A loan, where the object
   * owns it and the anon borrows it)
   */
  anonOwns = false;
  /** @readonly how many loans the page is on (to the kernel, and to anons from its object) */
  loanCount = 0;
  /** @readonly how many times the page is wired: its kernel loans, plus one for kernel memory */
  wireCount = 0;
  /** @readonly the object that owns the page (a file, shared memory, the kernel), or null */
  uobject: UvmObject | null = null;
  /** @readonly page index within `uobject` */
  offset = 0;
  /** @readonly the anon that owns the page (anonOwns) or borrows it (an O->A loan), or null */
  uanon: Anon | null = null;
  /**
   * @internal scratch for the checks of a whole call before it changes anything (uvmUnloanPages counts
   * a page's listings in it, uvmPglistFree and uvmPageTransfer look for a page listed twice): always 0
   * between calls
   */
  mark = 0;
  /** @internal queue links */
  prev: VmPage | null = null;
  /** @internal queue links */
  next: VmPage | null = null;

  /** @internal only the VM system makes pages, one per frame, at boot */
  constructor(uvm: Uvm, frame: number) {
    this.uvm = uvm;
    this.frame = frame;
  }

  /** bytes: the frame's memory, a cached view of RAM (no copy, no allocation). */
  bytes(): Buffer {
    return this.uvm.ram.frame(this.frame);
  }

  /** isOrphan: allocated, on loan, and owned by nobody. */
  isOrphan(): boolean {
    return this.queue !== PQ_FREE && this.uobject === null && (this.uanon === null || !this.anonOwns);
  }

  /** "page N", N its frame number */
  toString(): string {
    return `page ${this.frame}`;
  }
}

/** PageQueue: a paging queue (active or inactive), a doubly linked list threaded through the pages. */
export class PageQueue {
  /** first page (the oldest) */
  head: VmPage | null = null;
  /** last page (the newest) */
  tail: VmPage | null = null;
  /** pages on it */
  length = 0;
  /** which queue (PQ_*) */
  readonly id: number;

  /** an empty queue, id a PQ_* value */
  constructor(id: number) {
    this.id = id;
  }

  /** insertTail: put pg at the tail (it must be on no queue) */
  insertTail(pg: VmPage): void {
    pg.prev = this.tail;
    pg.next = null;
    if (this.tail) this.tail.next = pg;
    else this.head = pg;
    this.tail = pg;
    pg.queue = this.id;
    this.length++;
  }

  /**
   * replace: pg takes old's place on this queue, and old leaves it (queue PQ_NONE)
   * => old must be on this queue, pg on none
   */
  replace(old: VmPage, pg: VmPage): void {
    pg.prev = old.prev;
    pg.next = old.next;
    if (old.prev) old.prev.next = pg;
    else this.head = pg;
    if (old.next) old.next.prev = pg;
    else this.tail = pg;
    pg.queue = this.id;
    old.prev = old.next = null;
    old.queue = PQ_NONE;
  }

  /** remove: take pg off this queue */
  remove(pg: VmPage): void {
    if (pg.prev) pg.prev.next = pg.next;
    else this.head = pg.next;
    if (pg.next) pg.next.prev = pg.prev;
    else this.tail = pg.prev;
    pg.prev = pg.next = null;
    pg.queue = PQ_NONE;
    this.length--;
  }
}

/** uvmPageDequeue: take a page off whichever paging queue it is on. */
export function uvmPageDequeue(pg: VmPage): void {
  const uvm = pg.uvm;
  if (pg.queue === PQ_ACTIVE) uvm.active.remove(pg);
  else if (pg.queue === PQ_INACTIVE) uvm.inactive.remove(pg);
}

/**
 * uvmPageAlloc: allocate a free page (uvm_pagealloc): the free lists' smallest block gives it.
 * => owner: an object and page index, or an anon (which then owns it), or neither
 * => returns the page BUSY|FAKE|CLEAN on no queue, or null when no page is free (caller waits with
 *    uvmWait); `zero` fills it with zeros
 */
export function uvmPageAlloc(
  uvm: Uvm,
  obj: UvmObject | null,
  offset: number,
  anon: Anon | null,
  zero = false,
): VmPage | null {
  const pg = uvm.free.allocPage();
  if (pg === null) {
    uvm.pdaemonWake();
    return null;
  }
  return uvmPageInit(pg, obj, offset, anon, zero);
}

/**
 * uvmPageInit: set up a page just taken off the free lists (for uvmPageAlloc; uvmPglistAlloc sets up
 * its runs of them the same way, a run at a time).
 * => returns it BUSY|FAKE|CLEAN on no queue, owned as asked, zero-filled if `zero`
 */
export function uvmPageInit(
  pg: VmPage,
  obj: UvmObject | null,
  offset: number,
  anon: Anon | null,
  zero: boolean,
): VmPage {
  const uvm = pg.uvm;
  pg.flags = PG_BUSY | PG_FAKE | PG_CLEAN;
  if (obj !== null) uvmPageInsert(pg, obj, offset);
  if (anon !== null) {
    pg.uanon = anon;
    pg.anonOwns = true;
    anon.page = pg;
  }
  if (zero) uvm.ram.zero(pg.frame);
  if (uvm.free.length < uvm.freeMin) uvm.pdaemonWake();
  return pg;
}

/** uvmPageInsert / uvmPageRemove: tie a page to (or untie it from) an object's page array. */
export function uvmPageInsert(pg: VmPage, obj: UvmObject, offset: number): void {
  /* (if + panic, not kassert: a kassert's message would be built on every call) */
  if (pg.uobject !== null) panic(`uvm_pageinsert: ${pg} already in an object`);
  if (obj.pages[offset] !== undefined) panic(`uvm_pageinsert: offset ${offset} already has a page`);
  obj.pages[offset] = pg;
  obj.resident++;
  pg.uobject = obj;
  pg.offset = offset;
}

/** uvmPageRemove: untie a page from its object (see uvmPageInsert) */
export function uvmPageRemove(pg: VmPage): void {
  const obj = pg.uobject;
  if (obj === null || obj.pages[pg.offset] !== pg) panic(`uvm_pageremove: ${pg} not in its object`);
  obj.pages[pg.offset] = undefined;
  obj.resident--;
  pg.uobject = null;
  pg.offset = 0;
}

/**
 * uvmPageFree: an owner lets go of a page (uvm_pagefree, with later NetBSD's loan handling).
 * => a page still on loan is not freed: it is untied from its owner and becomes an orphan (or, if an
 *    anon borrowed it from the object, a page the anon may adopt); the last unloan frees it
 * => every mapping of the page must already be gone (we remove any left, to be safe)
 */
export function uvmPageFree(pg: VmPage): void {
  if (uvmPageRelease(pg)) pg.uvm.free.freePage(pg);
}

/**
 * uvmPageRelease: all of uvmPageFree but the last step -- the page untied from its owner, its
 * mappings, wiring and queue; a page still on loan becomes an orphan as uvmPageFree makes it.
 * => returns true when the page is now ready for the free lists, and the caller must put it there
 *    before anything else allocates (uvmPageFreeReleased, or uvm.free.freePage); false when its
 *    loans keep it
 */
export function uvmPageRelease(pg: VmPage): boolean {
  const uvm = pg.uvm;
  if (pg.queue === PQ_FREE) panic(`uvm_pagefree: freeing free ${pg}`);
  if (pg.loanCount > 0) {
    disownLoanedPage(pg);
    if (pg.loanCount > 0) return false;
  }
  if (pg.uobject !== null) uvmPageRemove(pg);
  if (pg.uanon !== null) {
    pg.uanon.page = null;
    pg.uanon = null;
  }
  pg.anonOwns = false;
  uvm.mmu.pageProtect(pg.frame, Prot.NONE);
  uvm.mmu.attrs[pg.frame] = 0;
  if (pg.wireCount > 0) {
    pg.wireCount = 0;
    uvm.wiredPages--;
  }
  uvmPageDequeue(pg);
  if (pg.flags & PG_WANTED) uvm.wakeup(pg);
  pg.flags = 0;
  return true;
}

/**
 * uvmPageFreeReleased: put pages uvmPageRelease made ready onto the free lists, each run of
 * consecutive frames (in the order given) as a run: a block of the buddy lists at a time, not a page
 * at a time (a page transfer frees the run the buffer held before).
 * => pages released and not yet freed, each listed once
 */
export function uvmPageFreeReleased(uvm: Uvm, pages: readonly VmPage[]): void {
  for (let i = 0; i < pages.length; ) {
    let j = i + 1;
    while (j < pages.length && pages[j].frame === pages[j - 1].frame + 1) j++;
    if (j - i === 1) uvm.free.freePage(pages[i]);
    else uvm.free.freeRun(pages[i].frame, j - i);
    i = j;
  }
}

/* disownLoanedPage: the owner of a loaned page drops it; the loans keep it alive. */
function disownLoanedPage(pg: VmPage): void {
  const uvm = pg.uvm;
  if (pg.uobject !== null) {
    uvmPageRemove(pg);
    pg.flags &= ~PG_CLEAN;
  } else if (pg.uanon !== null) {
    if (!pg.anonOwns) pg.loanCount--;
    pg.anonOwns = false;
    pg.uanon.page = null;
    pg.uanon = null;
  }
  if (pg.flags & PG_WANTED) uvm.wakeup(pg);
  pg.flags &= ~(PG_BUSY | PG_WANTED | PG_RELEASED);
  if (pg.loanCount > 0) {
    if (pg.uanon === null) uvmPageDequeue(pg);
    uvm.trace('orphan', pg);
  }
}

/**
 * uvmPageWire / uvmPageUnwire: pin a page (the pagedaemon passes over wired pages); it keeps its place
 * on its paging queue.
 * => unwiring a page that is on no queue puts it on the active queue
 */
export function uvmPageWire(pg: VmPage): void {
  if (pg.wireCount++ === 0) pg.uvm.wiredPages++;
}

/**
 * uvmPageUnwire: unpin a page (see uvmPageWire)
 * => panics if it is not wired
 */
export function uvmPageUnwire(pg: VmPage): void {
  if (pg.wireCount < 1) panic(`uvm_pageunwire: ${pg} isn't wired`);
  if (--pg.wireCount === 0) {
    pg.uvm.wiredPages--;
    if (pg.queue === PQ_NONE) pg.uvm.active.insertTail(pg);
  }
}

/** uvmPageActivate / uvmPageDeactivate: move an unwired page between the paging queues. */
export function uvmPageActivate(pg: VmPage): void {
  if (pg.wireCount > 0) return;
  if (pg.queue === PQ_ACTIVE) return;
  uvmPageDequeue(pg);
  pg.uvm.active.insertTail(pg);
}

/** uvmPageDeactivate: move an unwired page to the inactive queue (see uvmPageActivate) */
export function uvmPageDeactivate(pg: VmPage): void {
  if (pg.wireCount > 0 || pg.queue === PQ_INACTIVE) return;
  uvmPageDequeue(pg);
  pg.uvm.mmu.clearReference(pg.frame);
  pg.uvm.inactive.insertTail(pg);
}

/** uvmPageCopy: copy a frame's contents (uvm_pagecopy). */
export function uvmPageCopy(src: VmPage, dst: VmPage): void {
  src.uvm.ram.copy(src.frame, dst.frame);
}

/**
 * uvmPageUnbusy: the holder of a BUSY page is done with it; wake anyone who waited.
 */
export function uvmPageUnbusy(pg: VmPage): void {
  const wanted = pg.flags & PG_WANTED;
  pg.flags &= ~(PG_BUSY | PG_WANTED | PG_FAKE);
  if (wanted) pg.uvm.wakeup(pg);
}

/**
 * uvmPageWaitBusy: sleep until a BUSY page is unbusied (or freed): sets WANTED.
 * => the caller must relook the page up afterwards: it may have changed hands
 */
export function uvmPageWaitBusy(pg: VmPage): Promise<void> {
  pg.flags |= PG_WANTED;
  return pg.uvm.sleep(pg);
}

/** checkPageArg: validate that a user-supplied value is a page of this system. */
export function checkPageArg(fn: string, pg: unknown): asserts pg is VmPage {
  if (!(pg instanceof VmPage)) throw new KernelError('EINVAL', `${fn}: not a vm_page: ${String(pg)}`);
}
