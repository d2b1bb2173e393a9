/*
 * uvm_pglist.ts: physically contiguous runs of pages (NetBSD's uvm_pglist.c: uvm_pglistalloc,
 * uvm_pglistfree).
 *
 * A device that reads into one flat buffer -- here Node's `onread`, which wants one contiguous Buffer
 * per read of the socket layer's receive area -- needs runs of frames that follow each other in RAM.
 * NetBSD's uvm_pglistalloc finds them by walking each physical segment's frames from a hint, with
 * alignment and boundary constraints; its cost grows with RAM. Ours takes them from the buddy free
 * lists (uvm_pgfl.ts, after Linux's buddy allocator) in O(log RAM), synchronously: a run is had now,
 * or null -- never a sleep, so a caller that can do without one (copy instead of transfer) falls back
 * at once; uvmKmAllocContig (uvm_km.ts) is the caller that waits for the pagedaemon instead.
 *
 * The pages come back as kernel memory, exactly as uvmKmAllocPage's: owned by the kernel object (at
 * the offset of their frame), wired, on no paging queue, so the pagedaemon passes them by. They may be
 * freed one by one or all together (uvmPglistFree, or uvmKmFreePage), or given to a process
 * (uvmPageTransfer, uvm_transfer.ts); freed frames merge back into runs with their free neighbours.
 */
import { KernelError, panic } from './errors.js';
import { option, PAGE_SIZE } from './param.js';
import { Uvm } from './uvm.js';
import {
  PG_BUSY,
  PG_CLEAN,
  uvmPageFreeReleased,
  uvmPageInsert,
  uvmPageRelease,
  uvmPageUnwire,
  VmPage,
} from './uvm_page.js';

/** Options of uvmPglistAlloc. */
export interface PglistOptions {
  /** fill the pages with zeros (default true); false leaves whatever the frames held last -- for a
   *  caller that overwrites every byte before anyone else can see it */
  zero?: boolean;
}

/**
 * uvmPglistAlloc: npages physically contiguous pages of wired kernel memory, now or not at all
 * (uvm_pglistalloc with waitok false).
 * => uvm a kernel's Uvm, npages an integer 1..physPages, opts an object whose `zero` is a boolean
 *    or left out: else EINVAL, before anything is done
 * => returns the pages in frame order (pages[i].frame === pages[0].frame + i), each owned by the
 *    kernel object, wired, not BUSY, zero-filled unless opts.zero is false; or null when no run of
 *    npages free frames can be had now (the pagedaemon is woken; nothing waits)
 * => counts every call in uvmexp.pglistAllocs, and every null in pglistFailed
 * => O(log RAM) whatever the state of memory (plus the npages pages it sets up)
 */
export function uvmPglistAlloc(uvm: Uvm, npages: number, opts: PglistOptions = {}): VmPage[] | null {
  const zero = checkPglistArgs('uvm_pglistalloc', uvm, npages, opts);
  uvm.exp.pglistAllocs++;
  const first = uvm.free.allocRun(npages);
  if (first < 0) {
    uvm.exp.pglistFailed++;
    uvm.pdaemonWake();
    return null;
  }
  return takeRun(uvm, first, npages, zero);
}

/*
 * takeRun: the pages of frames first..first + npages - 1, just off the free lists, set up as kernel
 * memory -- what uvmPageInit (kernel object, at the frame's offset), uvmPageWire and uvmPageUnbusy
 * would leave, a run at a time: flags CLEAN (nobody has seen the pages, so nobody waits for them),
 * wired once, zeroed in one fill
 */
function takeRun(uvm: Uvm, first: number, npages: number, zero: boolean): VmPage[] {
  const kobj = uvm.kernelObject;
  const out = new Array<VmPage>(npages);
  for (let i = 0; i < npages; i++) {
    const pg = uvm.pages[first + i];
    uvmPageInsert(pg, kobj, first + i);
    pg.flags = PG_CLEAN;
    pg.wireCount = 1;
    out[i] = pg;
  }
  uvm.wiredPages += npages;
  if (zero) uvm.ram.bytes.fill(0, first * PAGE_SIZE, (first + npages) * PAGE_SIZE);
  if (uvm.free.length < uvm.freeMin) uvm.pdaemonWake();
  return out;
}

/**
 * uvmPglistSure: will uvmPglistAlloc(uvm, npages) succeed now, and still after any pages are freed
 * meanwhile? (A caller that frees pages and then wants a run -- the warmest one, just freed -- asks
 * first, and takes the run afterwards only if the answer is yes.)
 * => uvm and npages as uvmPglistAlloc's (EINVAL)
 * => true when a free aligned block of at least npages pages (rounded up to a power of two) exists;
 *    false does not mean uvmPglistAlloc would fail (it may find a run across blocks)
 */
export function uvmPglistSure(uvm: Uvm, npages: number): boolean {
  checkPglistArgs('uvm_pglistsure', uvm, npages, {});
  return uvm.free.sureRun(npages);
}

/**
 * checkPglistArgs: the checks of uvmPglistAlloc and uvmKmAllocContig
 * => returns whether to zero the pages; throws EINVAL naming fn
 */
export function checkPglistArgs(fn: string, uvm: Uvm, npages: number, opts: PglistOptions): boolean {
  if (!(uvm instanceof Uvm)) throw new KernelError('EINVAL', `${fn}: not a kernel's uvm`);
  if (!Number.isSafeInteger(npages) || npages < 1 || npages > uvm.pages.length) {
    throw new KernelError('EINVAL', `${fn}: bad page count ${String(npages)} (1..${uvm.pages.length})`);
  }
  if (opts === null || typeof opts !== 'object') throw new KernelError('EINVAL', `${fn}: bad options`);
  const zero = option(opts.zero, true);
  if (typeof zero !== 'boolean') throw new KernelError('EINVAL', `${fn}: zero must be a boolean`);
  return zero;
}

/**
 * uvmPglistFree: give back pages of kernel memory (uvm_pglistfree) -- a run from uvmPglistAlloc, a
 * part of one, or any pages from uvmKmAllocPage; their frames merge with free neighbours
 * => EINVAL unless `pages` is an array of vm_pages (a promise says "a forgotten await?"), all of one
 *    kernel; then a KernelPanic, with nothing freed, if a page isn't kernel memory (never allocated
 *    so, already freed, or transferred to a process) or is listed twice
 */
export function uvmPglistFree(pages: readonly VmPage[]): void {
  pages = checkPageList('uvm_pglistfree', pages);
  if (pages.length === 0) return;
  const uvm = pages[0].uvm;
  for (let i = 1; i < pages.length; i++) {
    if (pages[i].uvm !== uvm)
      throw new KernelError('EINVAL', 'uvm_pglistfree: pages of two kernels in one list');
  }
  checkKernelPages('uvm_pglistfree', pages);
  /* (kernel memory is never on loan: every page is released; a run goes back as a run) */
  const released: VmPage[] = [];
  for (let i = 0; i < pages.length; i++) {
    uvmPageUnwire(pages[i]);
    if (uvmPageRelease(pages[i])) released.push(pages[i]);
  }
  uvmPageFreeReleased(uvm, released);
}

/**
 * checkKernelPages: a KernelPanic naming fn unless every page is kernel memory (the kernel object's,
 * wired once, not on loan, not BUSY) and none is listed twice
 */
export function checkKernelPages(fn: string, pages: readonly VmPage[]): void {
  /* the usual list, a run of consecutive frames as uvmPglistAlloc hands them out, lists no page
     twice: it is checked in one pass, with no marks; a page that isn't kernel memory in that run is
     also the first fault the marking pass below would find */
  let i = 0;
  for (; i < pages.length && pages[i].frame === pages[0].frame + i; i++) {
    if (!isKernelMemory(pages[i])) panic(`${fn}: page ${pages[i].frame} isn't kernel memory`);
  }
  if (i === pages.length) return;
  try {
    for (let i = 0; i < pages.length; i++) {
      const pg = pages[i];
      if (!isKernelMemory(pg)) panic(`${fn}: page ${pg.frame} isn't kernel memory`);
      if (pg.mark++ !== 0) panic(`${fn}: page ${pg.frame} is listed twice`);
    }
  } finally {
    for (let i = 0; i < pages.length; i++) pages[i].mark = 0;
  }
}

/**
 * isKernelMemory: is the page kernel memory as uvmPglistAlloc and uvmKmAllocPage hand it out -- the
 * kernel object's, wired once, not on loan, not BUSY?
 */
export function isKernelMemory(pg: VmPage): boolean {
  return (
    pg.uobject === pg.uvm.kernelObject &&
    pg.wireCount === 1 &&
    pg.loanCount === 0 &&
    (pg.flags & PG_BUSY) === 0
  );
}

/**
 * checkPageList: EINVAL naming fn unless `list` is an array of vm_pages; returns a snapshot of it
 * (snapshotList) for the caller to check further and use
 */
export function checkPageList(fn: string, list: unknown): VmPage[] {
  const pages = snapshotList(fn, list, 'vm_page');
  for (let i = 0; i < pages.length; i++) checkPageElement(fn, pages, i);
  return pages as VmPage[];
}

/**
 * checkPageElement: EINVAL naming fn unless list[i] is a vm_page (a promise: "a forgotten await?")
 */
export function checkPageElement(fn: string, list: readonly unknown[], i: number): void {
  if (!(list[i] instanceof VmPage)) {
    const hint = list[i] instanceof Promise ? ' (a promise: a forgotten await?)' : '';
    throw new KernelError('EINVAL', `${fn}: element ${i} isn't a vm_page${hint}`);
  }
}

/**
 * snapshotList: an array argument read once, element by element, into an array of our own -- what is
 * checked is then exactly what is used, whatever a getter or a Proxy would answer the second time
 * => EINVAL naming fn unless list is an array (a promise: "a forgotten await?")
 */
export function snapshotList(fn: string, list: unknown, what: string): unknown[] {
  if (!Array.isArray(list)) {
    const hint = list instanceof Promise ? ' (a promise: a forgotten await?)' : '';
    throw new KernelError('EINVAL', `${fn}: not an array of ${what}s${hint}`);
  }
  return Array.prototype.slice.call(list);
}
