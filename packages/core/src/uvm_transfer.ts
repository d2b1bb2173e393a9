/*
 * uvm_transfer.ts: page transfer -- kernel pages moved *into* a process, the other half of Cranor's
 * zero-copy design (his dissertation and USENIX '99 paper: "page transfer", uvm_loan's counterpart;
 * NetBSD merged loanout but never page transfer).
 *
 * Loanout lends a process's pages out, read-only and copy-on-write. Transfer goes the other way:
 * pages the kernel filled (the socket layer's receive area, which the network read into) become the
 * process's own anonymous memory at an address, with no copy. Each page leaves the kernel object and
 * its wiring, gets an anon of its own (PQ_ANON) in the entry's amap, and is mapped writable at once,
 * dirty (its only copy is in RAM), on the active queue -- in every way the page a write fault would
 * have made, with other bytes in it, but one: where the page it replaces was on the active queue, it
 * takes that page's place there rather than the tail (the slot keeps its age in the pagedaemon's
 * order; and a page transfer saves a queue remove and insert per page). What the slot held before
 * loses the slot's reference, as if the range had been unmapped and mapped again:
 *
 *   an anon only this slot held        freed (its page freed, its swap slot released)
 *   ... whose page is on loan (A->K)    the page becomes an orphan: its borrower keeps the old bytes
 *   an anon others hold too             kept by them: a fork's other side, a pin (uvmLoan 'anon')
 *   nothing (zero-fill never touched)   the slot is simply filled
 *
 * A needs-copy entry (after fork) first gets its own amap, as a write fault would make it: the other
 * process keeps the old anons. Only private (copy-on-write) anonymous memory can take a transfer: a
 * private file mapping must keep reading the file where it was never written ('file-backed'), and
 * shared memory lives in an object the page would have to enter instead ('shared'). uvmTransferCheck
 * says, without changing anything, whether a range can take one, and if not why, in stable words a
 * caller can count its fallbacks by.
 */
import { KernelError, panic } from './errors.js';
import { atop, checkAddress, hex, isPageAligned, PAGE_SIZE, Prot, VM_MAX_ADDRESS } from './param.js';
import type { Uvm } from './uvm.js';
import { amapAdd } from './uvm_amap.js';
import { type Anon, uvmAnonAlloc, uvmAnonUnref } from './uvm_anon.js';
import { type MapEntry, uvmMapAmapCopy, VmMap } from './uvm_map.js';
import {
  PG_BUSY,
  PG_CLEAN,
  PG_WANTED,
  PQ_ACTIVE,
  PQ_NONE,
  uvmPageDequeue,
  uvmPageRelease,
  type VmPage,
} from './uvm_page.js';
import { checkKernelPages, checkPageElement, isKernelMemory, snapshotList } from './uvm_pglist.js';

/**
 * Why a range cannot take a transfer (uvmTransferCheck), in the order they are looked for:
 * - `unaligned`: the address is not page-aligned
 * - `unmapped`: some page of the range is not mapped (or beyond user space)
 * - `not-writable`: some page is mapped without write permission
 * - `file-backed`: some page maps a file (private or shared)
 * - `shared`: some page is shared anonymous memory (an aobj), or not copy-on-write
 */
export type TransferRefusal = 'unaligned' | 'unmapped' | 'not-writable' | 'file-backed' | 'shared';

/** every TransferRefusal, in the order uvmTransferCheck looks for them (for counters by reason) */
export const TRANSFER_REFUSALS: readonly TransferRefusal[] = [
  'unaligned',
  'unmapped',
  'not-writable',
  'file-backed',
  'shared',
];

/**
 * uvmTransferCheck: can [va, va + npages pages) of a map take a page transfer? Changes nothing.
 * => map a VmMap, va a non-negative safe integer, npages an integer 1..(user space in pages): else
 *    EINVAL
 * => returns null when it can; else the first reason that applies (TRANSFER_REFUSALS' order; among
 *    the entries of the range, the lowest address's): private anonymous memory, wholly mapped and
 *    writable, can; anything on loan or pinned in it can too (the borrowers keep their pages)
 */
export function uvmTransferCheck(map: VmMap, va: number, npages: number): TransferRefusal | null {
  if (!(map instanceof VmMap)) throw new KernelError('EINVAL', 'uvm_transfercheck: not a vm_map');
  checkAddress('uvm_transfercheck', va, false);
  checkPageCount('uvm_transfercheck', npages);
  return rangeRefusal(map, va, npages);
}

/* rangeRefusal: uvmTransferCheck's answer, its arguments checked */
function rangeRefusal(map: VmMap, va: number, npages: number): TransferRefusal | null {
  if (!isPageAligned(va)) return 'unaligned';
  const end = va + npages * PAGE_SIZE;
  if (map.dead || end > VM_MAX_ADDRESS) return 'unmapped';
  for (let a = va; a < end; ) {
    const e = map.lookup(a);
    if (e === null) return 'unmapped';
    const why = entryRefusal(e);
    if (why !== null) return why;
    a = e.end;
  }
  return null;
}

/* entryRefusal: why a mapped entry can't take a transfer, or null */
function entryRefusal(e: MapEntry): TransferRefusal | null {
  if ((e.prot & Prot.WRITE) === 0) return 'not-writable';
  if (e.object !== null) return e.object.kind === 'vnode' ? 'file-backed' : 'shared';
  if (!e.copyOnWrite) return 'shared';
  return null;
}

function checkPageCount(fn: string, npages: number): void {
  if (!Number.isSafeInteger(npages) || npages < 1 || npages > VM_MAX_ADDRESS / PAGE_SIZE) {
    throw new KernelError('EINVAL', `${fn}: bad page count ${String(npages)}`);
  }
}

/**
 * uvmPageTransfer: make kernel pages the anonymous memory of a map at va, va + PAGE_SIZE, ...
 * (Cranor's page transfer): pages[i] becomes the page of a new anon in the amap slot of
 * va + i * PAGE_SIZE, mapped writable at once (no fault needed), dirty, on the active queue; it
 * leaves the kernel object and is unwired. What the slot held loses the slot's reference (freed, or
 * an orphan alive for its loans, or kept by whoever else holds it: see the file's essay).
 * => map a VmMap (EINVAL) that has not been torn down (EFAULT); va page-aligned (EINVAL); pages a
 *    non-empty array of vm_pages (EINVAL); the range must pass uvmTransferCheck: 'unmapped' and
 *    'not-writable' are EFAULT, the rest EINVAL -- all checked before anything changes
 * => each page must be the caller's kernel page, as uvmPglistAlloc and uvmKmAllocPage hand them out
 *    (kernel object, wired once, not on loan, not BUSY), of this map's kernel, listed once: else a
 *    KernelPanic, before anything changes
 * => the caller gives the pages up: it must have removed any kernel mapping of them (kremove) and
 *    must not touch their bytes again through a view of RAM (that bypasses the MMU: the bytes are the
 *    process's now)
 * => counts the pages in uvmexp.pagesTransferred, and traces a 'transfer' event per page (detail: the
 *    address)
 */
export function uvmPageTransfer(map: VmMap, va: number, pageList: readonly VmPage[]): void {
  /* the list read once: what is checked is what is moved */
  const pages = checkTransferArgs(map, va, pageList);
  /* a trace listener sees the events once every page has moved: it can neither see the books half
     done nor free or take a page the checks above have already passed (with no listener there is
     nothing to hold: called directly, no closure made) */
  if (map.uvm.tracers.length === 0) transferPages(map, va, pages);
  else map.uvm.withTracesHeld(() => transferPages(map, va, pages));
}

/* transferPages: uvmPageTransfer's work, its arguments checked */
function transferPages(map: VmMap, va: number, pages: readonly VmPage[]): void {
  for (let i = 0; i < pages.length; ) {
    const a = va + i * PAGE_SIZE;
    const e = map.lookup(a)!;
    if (e.needsCopy || e.amap === null) uvmMapAmapCopy(map, e);
    const n = Math.min(pages.length - i, atop(e.end - a));
    transferRun(map, e, a, pages, i, n);
    i += n;
  }
  map.version++;
}

/*
 * transferRun: pages[from..from + n) into the slots of [va, va + n pages) of entry e (checked: private
 * anonymous memory, writable, with an amap of its own), one after the other. The old pages freed are
 * put on the free lists a run of consecutive frames at a time, as the runs end (they are often one
 * run: the pages an earlier transfer put there); nothing allocates a page meanwhile.
 */
function transferRun(
  map: VmMap,
  e: MapEntry,
  va: number,
  pages: readonly VmPage[],
  from: number,
  n: number,
): void {
  const uvm = map.uvm;
  const tracing = uvm.tracers.length > 0;
  const slot0 = e.amapSlot + atop(va - e.start) - from;
  const vpn0 = atop(va) - from;
  let runFirst = 0;
  let runLength = 0;
  for (let j = from; j < from + n; j++) {
    const freed = transferOne(map, e, slot0 + j, vpn0 + j, pages[j]);
    /* (held: delivered when the whole transfer is done) */
    if (tracing) uvm.trace('transfer', pages[j], hex((vpn0 + j) * PAGE_SIZE));
    if (freed === null) continue;
    if (runLength > 0 && freed.frame === runFirst + runLength) {
      runLength++;
      continue;
    }
    if (runLength > 0) uvm.free.freeRun(runFirst, runLength);
    runFirst = freed.frame;
    runLength = 1;
  }
  if (runLength > 0) uvm.free.freeRun(runFirst, runLength);
  uvm.exp.pagesTransferred += n;
}

/**
 * checkTransferArgs: everything uvmPageTransfer checks before it changes anything, in this order:
 * the map and address, the list (EINVAL), the map alive (EFAULT), the range (uvmTransferCheck's
 * refusals), then the pages themselves (KernelPanic)
 * => returns the pages as checked (a snapshot: the caller's array is read once)
 */
function checkTransferArgs(map: VmMap, va: number, pageList: readonly VmPage[]): VmPage[] {
  const fn = 'uvm_pagetransfer';
  if (!(map instanceof VmMap)) throw new KernelError('EINVAL', `${fn}: not a vm_map`);
  checkAddress(fn, va, true);
  const pages = snapshotList(fn, pageList, 'vm_page') as VmPage[];
  const usual = scanPages(fn, map.uvm, pages);
  if (pages.length === 0) throw new KernelError('EINVAL', `${fn}: no pages`);
  if (map.dead) throw new KernelError('EFAULT', `${fn}: the map has been torn down`);
  checkPageCount('uvm_transfercheck', pages.length);
  const why = rangeRefusal(map, va, pages.length);
  if (why !== null) {
    const code = why === 'unmapped' || why === 'not-writable' ? 'EFAULT' : 'EINVAL';
    throw new KernelError(code, `${fn}: ${hex(va)} (+${pages.length} pages) can't take a transfer: ${why}`);
  }
  if (!usual) {
    for (const pg of pages) if (pg.uvm !== map.uvm) panic(`${fn}: page ${pg.frame} is another kernel's`);
    checkKernelPages(fn, pages);
  }
  return pages;
}

/*
 * scanPages: EINVAL naming fn unless every element is a vm_page (checkPageList's check), in one pass
 * with a look for the usual list: a run of consecutive frames of this kernel, each kernel memory, as
 * uvmPglistAlloc hands them out -- which needs no other check (consecutive frames list no page twice)
 * => returns true for the usual list; false only says the pages need the full checks (which panic,
 *    naming the page, before anything changes)
 */
function scanPages(fn: string, uvm: Uvm, pages: readonly VmPage[]): boolean {
  let usual = true;
  for (let i = 0; i < pages.length; i++) {
    checkPageElement(fn, pages, i);
    const pg = pages[i];
    if (usual) usual = pg.uvm === uvm && pg.frame === pages[0].frame + i && isKernelMemory(pg);
  }
  return usual;
}

/*
 * transferOne: one page into a slot of entry e, mapped at vpn. An anon only this slot holds, whose
 * page is its own and not BUSY, takes the new page itself -- its old page freed or orphaned as
 * uvmAnonFree would, its swap slot released -- rather than being freed for a new anon to be made: the
 * same outcome, one allocation less. The new page is entered before the old one is let go of, so the
 * mapping at vpn moves to it (pmap enter reuses its pv entry); any other mapping of the old page is
 * removed as it goes.
 * => returns the old page when it is released and must go onto the free lists before anything else
 *    allocates (the caller frees it), else null
 */
function transferOne(map: VmMap, e: MapEntry, slot: number, vpn: number, pg: VmPage): VmPage | null {
  const amap = e.amap!;
  const old = amap.slots[slot];
  leaveKernel(pg);
  let anon: Anon;
  let oldPage: VmPage | null = null;
  if (old !== null && anonReusable(old)) {
    anon = old;
    oldPage = old.page;
    if (old.swslot !== 0) {
      map.uvm.swap.free(old.swslot);
      old.swslot = 0;
    }
  } else {
    anon = uvmAnonAlloc(map.uvm);
    amapAdd(amap, slot, anon, old !== null);
    if (old !== null) uvmAnonUnref(old);
  }
  map.pmap.enter(vpn, pg.frame, e.prot);
  const freed = oldPage !== null ? letGoOf(oldPage, pg) : activate(pg);
  /* (after the old page is let go of: releasing it unties it from the anon) */
  pg.uanon = anon;
  pg.anonOwns = true;
  anon.page = pg;
  return freed;
}

/*
 * letGoOf: a slot's old page, whose anon takes pg, is let go of as uvmAnonFree would: no mapping
 * left, then freed -- or an orphan, alive for its loans; pg goes onto the active queue. The usual old
 * page, on the active queue and wanted by nothing but the slot (not on loan, not wired, nobody
 * waiting for it), is released here, pg taking its place on the queue: the slot's page keeps its
 * place in the pagedaemon's order, and a remove and an insert are saved. Any other goes through
 * uvmPageRelease, pg onto the active queue's tail.
 * => returns oldPage when it is released and must go onto the free lists before anything else
 *    allocates (the caller frees it), else null
 */
function letGoOf(oldPage: VmPage, pg: VmPage): VmPage | null {
  const uvm = pg.uvm;
  if (
    oldPage.queue === PQ_ACTIVE &&
    oldPage.loanCount === 0 &&
    oldPage.wireCount === 0 &&
    (oldPage.flags & PG_WANTED) === 0
  ) {
    uvm.active.replace(oldPage, pg);
    /* what uvmPageRelease does to such a page (owned by its anon, not BUSY: anonReusable) */
    oldPage.uanon = null;
    oldPage.anonOwns = false;
    uvm.mmu.pageProtect(oldPage.frame, Prot.NONE);
    uvm.mmu.attrs[oldPage.frame] = 0;
    oldPage.flags = 0;
    return oldPage;
  }
  activate(pg);
  /* uvmPageRelease removes the mappings of a page it frees, not of one its loans keep */
  if (oldPage.loanCount > 0) uvm.mmu.pageProtect(oldPage.frame, Prot.NONE);
  return uvmPageRelease(oldPage) ? oldPage : null;
}

/* activate: a page leaving the kernel onto the active queue's tail (returns null: no page freed) */
function activate(pg: VmPage): null {
  pg.uvm.active.insertTail(pg);
  return null;
}

/*
 * leaveKernel: a page checkTransferArgs proved kernel memory (the kernel object's, wired once, not
 * BUSY) leaves the kernel object and its wiring, dirty (its only copy is in RAM), and any queue
 * (kernel memory is on none) -- what uvmPageRemove and uvmPageUnwire do, without their checks of what
 * is already proved; the caller puts it on the active queue
 */
function leaveKernel(pg: VmPage): void {
  const kobj = pg.uvm.kernelObject;
  kobj.pages[pg.offset] = undefined;
  kobj.resident--;
  pg.uobject = null;
  pg.offset = 0;
  pg.flags &= ~PG_CLEAN;
  pg.wireCount = 0;
  pg.uvm.wiredPages--;
  if (pg.queue !== PQ_NONE) uvmPageDequeue(pg);
}

/* anonReusable: may a slot's anon take a new page in place? Only this slot holds it, and its page (if any) is its own and not BUSY */
function anonReusable(anon: Anon): boolean {
  const pg = anon.page;
  return (
    anon.ref === 1 && (pg === null || (pg.anonOwns && pg.uobject === null && (pg.flags & PG_BUSY) === 0))
  );
}
