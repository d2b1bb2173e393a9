/*
 * uvm_loan.ts: page loanout (after NetBSD's uvm_loan.c, rev 1.20, by Chuck Cranor).
 *
 * "Loaned" pages are pages the VM system lends, read-only and copy-on-write, to other parts of the
 * kernel, so that data can move without being copied -- above all, user memory handed to the network
 * as mbufs. There are three kinds of loan:
 *
 *   O->K  an object's page (a file's, say) loaned to the kernel: wired, mapped read-only
 *   A->K  an anon's page (ordinary process memory) loaned to the kernel: same
 *   O->A  an object's page loaned to an anon: the anon borrows it; the object still owns it
 *
 * plus A->A (an anon loaned to another anon: just one more reference) and zero-fill loans of memory
 * never touched, which all share one read-only zero page. The seed has no zero page (each zero loan
 * got a page of its own); later NetBSD shares one in uvm_loanzero_object, as we do -- but current
 * NetBSD keeps that page forever and, wiring no loaned page at all, never wires it, while here it is
 * made on the first zero loan, wired by each kernel loan like any loaned page (the seed's rule), and
 * freed with its last loan.
 *
 * The rules:
 *   - pg.loanCount counts the loans. An O->A page has uobject and uanon but anonOwns (PQ_ANON) clear.
 *   - The first loan of a page makes every user mapping of it read-only (pmapPageProtect(pg, READ)).
 *     A later user write therefore faults, and the fault handler *breaks* the loan: the writer gets a
 *     copy, the borrowers keep the old page, unchanged. Bytes on loan never change under a borrower.
 *   - Every loan to the kernel also wires the page, so the pagedaemon can never take it away.
 *   - A kernel write to a loaned page is fatal: kernel mappings of loans are read-only and unmanaged,
 *     so there is no owner to copy for (pmap.ts).
 *   - An owner that frees a loaned page doesn't free it; it disowns it, and the page becomes an
 *     *orphan*, alive for its borrowers; the last unloan frees it. An anon that borrowed a page from
 *     an object that let go of it *adopts* it (uvmAnonAdopt).
 *   - Loans are broken by: (1) a write fault, (2) the pagedaemon taking an inactive O->A page from its
 *     object (the anon keeps it; a dirty page is first written back through the object's pager, as
 *     the seed-era pagedaemon did), (3) the owner freeing the page (munmap, exit, truncate).
 *
 * The loop, as in the seed: uvmLoan looks up the entry for `start` and calls uvmLoanEntry, which loans
 * page after page: anon layer first (uvmLoanAnon), then the object (uvmLoanUobj), then zero-fill for
 * copy-on-write entries (uvmLoanZero); an entry with neither fails. A page that needs I/O or a wait
 * (swapped out, not resident, BUSY, no free page) stops the synchronous loop; the slow path does the
 * sleep, then revalidates -- the map version (uvmfault_relock), the page's RELEASED flag, the amap slot
 * -- and either takes the loan or sends us back to look the entry up again. Only the slow path awaits:
 * resident pages are loaned with no allocation and no await per page. On any failure, every loan taken
 * so far is dropped before the error is thrown (the seed's `fail:`).
 */
import { KernelError, panic } from './errors.js';
import { atop, hex, isPageAligned, PAGE_SIZE, Prot, VM_MAX_ADDRESS } from './param.js';
import { Anon, uvmAnonAdopt, uvmAnonAlloc, uvmAnonUnref } from './uvm_anon.js';
import { uvmfaultAnonget } from './uvm_fault.js';
import { type MapEntry, VmMap } from './uvm_map.js';
import { UNLOCK, type UvmObject } from './uvm_object.js';
import {
  PG_BUSY,
  PG_RELEASED,
  uvmPageActivate,
  uvmPageFree,
  uvmPageUnbusy,
  uvmPageUnwire,
  uvmPageWaitBusy,
  uvmPageWire,
  VmPage,
} from './uvm_page.js';
import { snapshotList } from './uvm_pglist.js';

/** Whom uvmLoan lends to: the kernel (pages, wired and read-only) or anons. */
export type LoanTarget = 'kernel' | 'anon';

/*
 * what a page's loan attempt says: GOT it, or GO_SLOW -- the page needs a sleep (I/O, a BUSY page,
 * memory), which the slow path takes before it looks up again. Unlike the seed's -1 / 0 / 1 (fatal
 * error, relookup, got it), a fatal error is thrown, never returned.
 */
const GOT = 1;
const GO_SLOW = 2;

/* why the synchronous loop stopped: filled in by the page it stopped at */
type Slow =
  | { kind: 'anon'; anon: Anon }
  | { kind: 'uobj'; obj: UvmObject; idx: number }
  | { kind: 'zero'; busy: VmPage | null };

/* one loan call's state (the seed's ufi; output and n are its output array and pointer) */
interface LoanInfo {
  map: VmMap;
  toAnon: boolean;
  output: (VmPage | Anon)[];
  n: number;
  entry: MapEntry;
  va: number;
  version: number;
  slow: Slow | null;
}

/**
 * uvmLoan: loan out the pages of [start, start + len) of a map, to the kernel or to anons (uvm_loan).
 * => start and len page-aligned, len > 0 (EINVAL); target exactly 'kernel' or 'anon' (EINVAL)
 * => 'kernel': returns the pages, each loaned (loanCount++) and wired, all mappings read-only
 * => 'anon': returns anons (A->A: the same anon, one more reference; O->A and zero: the page's anon)
 * => throws EFAULT for an unmapped or unreadable page, ENOMEM/EIO from the pager; then no loan remains
 */
export function uvmLoan(map: VmMap, start: number, len: number, to: 'kernel'): Promise<VmPage[]>;
/**
 * uvmLoan to anons (O->A, A->A, zero): the anons, one per page; otherwise as uvmLoan to the kernel.
 * => throws EINVAL, EFAULT, ENOMEM, EIO as uvmLoan to the kernel; then no loan remains
 */
export function uvmLoan(map: VmMap, start: number, len: number, to: 'anon'): Promise<Anon[]>;
/**
 * uvmLoan with the target a LoanTarget variable: the pages ('kernel') or the anons ('anon').
 * => as uvmLoan to the kernel or to anons
 */
export function uvmLoan(map: VmMap, start: number, len: number, to: LoanTarget): Promise<VmPage[] | Anon[]>;
export function uvmLoan(map: VmMap, start: number, len: number, to: LoanTarget): Promise<VmPage[] | Anon[]> {
  try {
    const r = uvmLoanTry(map, start, len, to);
    return r instanceof Promise ? r : Promise.resolve(r);
  } catch (err) {
    return Promise.reject(err);
  }
}

/**
 * uvmLoanTry: uvmLoan for callers on a hot path (the mbuf layer): the same loans, the same errors,
 * but without a promise when none is needed.
 * => returns the loans themselves when every page could be loaned without sleeping; else a Promise
 *    of them (the slow path slept for I/O, a BUSY page or memory)
 * => throws (synchronously, or by rejecting) what uvmLoan throws; then no loan remains
 */
export function uvmLoanTry(
  map: VmMap,
  start: number,
  len: number,
  to: 'kernel',
): VmPage[] | Promise<VmPage[]>;
/**
 * uvmLoanTry to anons: the anons now when nothing slept, else a promise of them.
 * => as uvmLoanTry to the kernel
 */
export function uvmLoanTry(map: VmMap, start: number, len: number, to: 'anon'): Anon[] | Promise<Anon[]>;
/**
 * uvmLoanTry with the target a LoanTarget variable.
 * => as uvmLoanTry to the kernel or to anons
 */
export function uvmLoanTry(
  map: VmMap,
  start: number,
  len: number,
  to: LoanTarget,
): VmPage[] | Anon[] | Promise<VmPage[] | Anon[]>;
export function uvmLoanTry(
  map: VmMap,
  start: number,
  len: number,
  to: LoanTarget,
): VmPage[] | Anon[] | Promise<VmPage[] | Anon[]> {
  const li = uvmLoanStart(map, start, len, to);
  if (li.slow !== null) return uvmLoanSlowLoop(li, start + len);
  return li.output as VmPage[] | Anon[];
}

/**
 * uvmLoanNow: uvmLoan for a caller that must not sleep at all -- the loans now, or none.
 * => returns the loans when every page could be loaned without sleeping; null when some page would
 *    need I/O, a BUSY page or memory (then every loan taken so far has been dropped again)
 * => throws (synchronously) what uvmLoan throws; then no loan remains
 * => a borrower uses it to pin a range copy-on-write at the moment of a call (the socket layer's
 *    send: the bytes it sends are the bytes at the call)
 */
export function uvmLoanNow(map: VmMap, start: number, len: number, to: 'kernel'): VmPage[] | null;
/**
 * uvmLoanNow to anons: the anons now, or null (nothing kept) when a page would need a sleep.
 * => as uvmLoanNow to the kernel
 */
export function uvmLoanNow(map: VmMap, start: number, len: number, to: 'anon'): Anon[] | null;
export function uvmLoanNow(map: VmMap, start: number, len: number, to: LoanTarget): VmPage[] | Anon[] | null {
  const li = uvmLoanStart(map, start, len, to);
  if (li.slow === null) return li.output as VmPage[] | Anon[];
  uvmLoanDrop(li);
  return null;
}

/*
 * uvmLoanStart: check the arguments and loan page after page until the range is done or a page needs
 * the slow path (li.slow set; the loans before it are kept, for the caller to go on or drop)
 * => on any error every loan taken is dropped before it is thrown
 */
function uvmLoanStart(map: VmMap, start: number, len: number, to: LoanTarget): LoanInfo {
  checkLoanArgs(map, start, len, to);
  const li: LoanInfo = {
    map,
    toAnon: to === 'anon',
    output: new Array(len / PAGE_SIZE),
    n: 0,
    entry: null as unknown as MapEntry,
    va: start,
    version: 0,
    slow: null,
  };
  const end = start + len;
  try {
    while (li.va < end && li.slow === null) {
      uvmLoanLookup(li);
      uvmLoanEntry(li, end);
    }
  } catch (err) {
    uvmLoanDrop(li);
    throw err;
  }
  return li;
}

/*
 * uvmLoanSlowLoop: the rest of a loan once some page needed the slow path: sleep for that page, then
 * go on (looking up again) until the range is done; on failure drop every loan taken.
 */
async function uvmLoanSlowLoop(li: LoanInfo, end: number): Promise<VmPage[] | Anon[]> {
  try {
    for (;;) {
      if (li.slow !== null) await uvmLoanSlow(li);
      if (li.va >= end) break;
      uvmLoanLookup(li);
      uvmLoanEntry(li, end);
    }
  } catch (err) {
    uvmLoanDrop(li);
    throw err;
  }
  return li.output as VmPage[] | Anon[];
}

function checkLoanArgs(map: VmMap, start: number, len: number, to: LoanTarget): void {
  if (!(map instanceof VmMap)) throw new KernelError('EINVAL', 'uvm_loan: not a vm_map');
  if (to !== 'kernel' && to !== 'anon') {
    throw new KernelError('EINVAL', `uvm_loan: target must be 'kernel' or 'anon', not ${String(to)}`);
  }
  if (!Number.isSafeInteger(start) || start < 0 || !isPageAligned(start)) {
    throw new KernelError('EINVAL', `uvm_loan: start ${String(start)} is not a page-aligned address`);
  }
  if (!Number.isSafeInteger(len) || len <= 0 || !isPageAligned(len) || start + len > VM_MAX_ADDRESS) {
    throw new KernelError(
      'EINVAL',
      `uvm_loan: length ${String(len)} is not a positive page multiple in range`,
    );
  }
  if (map.dead) throw new KernelError('EFAULT', 'uvm_loan: the map has been torn down');
}

/* uvmLoanLookup: find the entry for li.va (uvmfault_lookup); EFAULT if unmapped or unreadable */
function uvmLoanLookup(li: LoanInfo): void {
  const entry = li.map.lookup(li.va);
  if (entry === null) throw new KernelError('EFAULT', `uvm_loan: ${hex(li.va)} is not mapped`);
  if (!(entry.prot & Prot.READ)) throw new KernelError('EFAULT', `uvm_loan: ${hex(li.va)} is not readable`);
  li.entry = entry;
  li.version = li.map.version;
}

/*
 * uvmLoanEntry: loan the pages of one entry from li.va up to `end` (uvm_loanentry).
 * => advances li.va past each page loaned; stops at the entry's end, at `end`, when a page needs
 *    the slow path (li.slow set), or when the lookup must be redone
 */
function uvmLoanEntry(li: LoanInfo, end: number): void {
  const entry = li.entry;
  const stop = Math.min(end, entry.end);
  const amap = entry.amap;
  const obj = entry.object;
  /* page index in the entry: exact, since li.va and entry.start are page-aligned */
  for (let idx = (li.va - entry.start) / PAGE_SIZE; li.va < stop; li.va += PAGE_SIZE, idx++) {
    const anon = amap !== null ? amap.slots[entry.amapSlot + idx] : null;
    let rv: number;
    if (anon !== null) rv = uvmLoanAnon(li, anon);
    /* unlike the seed, which asks the pager for `va - entry->start` alone, because an entry that maps
       an object from an offset (a file mapped at offset > 0) must loan the object's page there */ else if (
      obj !== null
    )
      rv = uvmLoanUobj(li, obj, entry.objOffset + idx);
    else if (entry.copyOnWrite) rv = uvmLoanZero(li);
    else throw new KernelError('EFAULT', `uvm_loan: ${hex(li.va)} has no backing (null map entry)`);
    if (rv !== GOT) return;
  }
}

/*
 * uvmLoanAnon: loan an anon's page (A->K) or the anon itself (A->A) (uvm_loananon).
 * => A->A: one more reference; the page is write-protected if the anon was its only user
 * => A->K: needs the page resident and not BUSY, else GO_SLOW (slow path: uvmfault_anonget)
 */
function uvmLoanAnon(li: LoanInfo, anon: Anon): number {
  const uvm = li.map.uvm;
  if (li.toAnon) {
    const pg = anon.page;
    if (pg?.anonOwns && anon.ref === 1) uvm.mmu.pageProtect(pg.frame, Prot.READ);
    anon.ref++;
    li.output[li.n++] = anon;
    uvm.exp.loansAnon++;
    return GOT;
  }
  const pg = anon.page;
  if (pg === null || pg.flags & PG_BUSY) {
    li.slow = { kind: 'anon', anon };
    return GO_SLOW;
  }
  if (pg.loanCount > 0) uvmAnonAdopt(anon);
  loanToKernel(li, pg);
  countAnonPageLoan(pg);
  return GOT;
}

/* countAnonPageLoan: an A->K loan; an anon's page still owned by its object (O->A) counts as current NetBSD's loan_oa */
function countAnonPageLoan(pg: VmPage): void {
  if (pg.uobject !== null) pg.uvm.exp.loansOA++;
  else pg.uvm.exp.loansAnon++;
}

/* loanToKernel: the heart of an A->K or O->K loan. */
function loanToKernel(li: LoanInfo, pg: VmPage): void {
  li.output[li.n++] = pg;
  loanPageToKernel(pg);
}

/* loanPageToKernel: make every mapping read-only, count the loan, wire the page */
function loanPageToKernel(pg: VmPage): void {
  const uvm = pg.uvm;
  if (pg.loanCount === 0) firstLoan(pg);
  pg.loanCount++;
  uvmPageWire(pg);
  if (uvm.tracers.length > 0) uvm.trace('loan', pg, 'kernel');
}

/*
 * uvmLoanUobj: loan an object's page (O->K, O->A) (uvm_loanuobj).
 * => the locked pgo_get first; if the page needs I/O or is BUSY, GO_SLOW (slow path)
 * => throws EFAULT for a page beyond the end of the object
 */
function uvmLoanUobj(li: LoanInfo, obj: UvmObject, idx: number): number {
  const pg = obj.getLocked(idx);
  if (pg === UNLOCK) {
    li.slow = { kind: 'uobj', obj, idx };
    return GO_SLOW;
  }
  return uvmLoanUobjPage(li, pg);
}

/* uvmLoanUobjPage: loan an object page we hold BUSY; it is unbusied before we return. */
function uvmLoanUobjPage(li: LoanInfo, pg: VmPage): number {
  const uvm = li.map.uvm;
  if (!li.toAnon) {
    loanToKernel(li, pg);
    uvmPageUnbusy(pg);
    if (pg.uobject === uvm.zeroObject) uvm.exp.loansZero++;
    else uvm.exp.loansObj++;
    return GOT;
  }
  let anon = pg.uanon;
  if (anon !== null) {
    anon.ref++;
  } else {
    anon = uvmAnonAlloc(uvm);
    anon.page = pg;
    pg.uanon = anon;
    if (pg.loanCount === 0) firstLoan(pg);
    pg.loanCount++;
  }
  li.output[li.n++] = anon;
  uvmPageActivate(pg);
  uvmPageUnbusy(pg);
  if (pg.uobject === uvm.zeroObject) uvm.exp.loansZero++;
  else uvm.exp.loansOA++;
  if (uvm.tracers.length > 0) uvm.trace('loan', pg, 'anon');
  return GOT;
}

/*
 * uvmLoanZero: "loan" a page of zero-fill memory never touched: the shared zero page, loaned like a
 * page of the zero object (O->K to the kernel, O->A to an anon).
 */
function uvmLoanZero(li: LoanInfo): number {
  const zobj = li.map.uvm.zeroObject;
  const pg = zobj.getLocked(0);
  if (pg === UNLOCK) {
    li.slow = { kind: 'zero', busy: zobj.pages[0] ?? null };
    return GO_SLOW;
  }
  return uvmLoanUobjPage(li, pg);
}

/*
 * uvmLoanSlow: the sleeping half of a page's loan. Sleeps (I/O, BUSY page, or memory), revalidates
 * as the seed does, and takes the loan if the world is still as it was; otherwise leaves li.va where
 * it is, so the caller looks the entry up again.
 */
async function uvmLoanSlow(li: LoanInfo): Promise<void> {
  const slow = li.slow!;
  li.slow = null;
  if (slow.kind === 'anon') {
    const pg = await uvmfaultAnonget(li.map, slow.anon, li.version);
    if (pg === null || !stillThere(li, slow.anon)) return;
    if (uvmLoanAnon(li, slow.anon) === GOT) li.va += PAGE_SIZE;
    return;
  }
  if (slow.kind === 'zero') {
    if (slow.busy !== null) await uvmPageWaitBusy(slow.busy);
    else await li.map.uvm.wait('loanzero');
    return;
  }
  const pg = await slow.obj.get(slow.idx);
  if (uvmLoanRelock(li, pg, slow.obj) && uvmLoanUobjPage(li, pg) === GOT) li.va += PAGE_SIZE;
}

/* stillThere: after a sleep, is the map unchanged and the anon still in its slot? */
function stillThere(li: LoanInfo, anon: Anon): boolean {
  const e = li.entry;
  return (
    li.map.version === li.version &&
    e.amap !== null &&
    e.amap.slots[e.amapSlot + atop(li.va - e.start)] === anon
  );
}

/*
 * uvmLoanRelock: after pgo_get slept, may we use the page? (the seed's relock checks)
 * => false if the map changed, the page was RELEASED, or an anon appeared in the amap slot meanwhile;
 *    the page is then released or unbusied, and the caller looks up again
 */
function uvmLoanRelock(li: LoanInfo, pg: VmPage, obj: UvmObject): boolean {
  const e = li.entry;
  const locked = li.map.version === li.version;
  /* unlike the seed, which looks at the slot of ufi->orig_rvaddr (the first page of this lookup),
     because the page we slept for is li.va: a later page's slot may have filled while the first's
     stayed empty */
  const slotFilled = locked && e.amap !== null && e.amap.slots[e.amapSlot + atop(li.va - e.start)] !== null;
  if (locked && !(pg.flags & PG_RELEASED) && !slotFilled) return true;
  if (pg.flags & PG_RELEASED) {
    obj.releasePage(pg);
    return false;
  }
  uvmPageActivate(pg);
  uvmPageUnbusy(pg);
  return false;
}

/* uvmLoanDrop: the seed's fail: path -- give back every loan taken so far. */
function uvmLoanDrop(li: LoanInfo): void {
  if (li.n === 0) return;
  const taken = li.output.slice(0, li.n);
  li.n = 0;
  if (li.toAnon) uvmUnloanAnons(taken as Anon[]);
  else uvmUnloanPages(taken as VmPage[]);
}

/**
 * uvmUnloanPages: end loans of pages to the kernel (uvm_unloanpage, with later NetBSD's adoption).
 * => each page: loanCount--, unwired; an anon that borrowed the page from an object that let go of it
 *    becomes its owner; a page nobody owns with no loans left is freed
 * => the whole call is checked before any page is touched: EINVAL (a KernelError) unless `pages` is an
 *    array of vm_pages (a promise says "a forgotten await?"); a KernelPanic, as in NetBSD, if a page
 *    isn't loaned to the kernel as many times as the array lists it (unloaned twice, or never loaned:
 *    the caller's bookkeeping is broken) -- [a, b, a] with one loan of a panics and unloans nothing
 */
export function uvmUnloanPages(pageList: readonly VmPage[]): void {
  const pages = checkLoanList('uvm_unloanpage', pageList, VmPage, 'vm_page') as VmPage[];
  try {
    for (let i = 0; i < pages.length; i++) {
      const pg = pages[i];
      if (pg.loanCount < 1) panic(`uvm_unloanpage: page ${pg.frame} isn't loaned`);
      if (++pg.mark > pg.wireCount || pg.mark > pg.loanCount) {
        panic(`uvm_unloanpage: page ${pg.frame} isn't loaned to the kernel ${pg.mark} times`);
      }
    }
  } finally {
    for (let i = 0; i < pages.length; i++) pages[i].mark = 0;
  }
  for (let i = 0; i < pages.length; i++) unloanOne(pages[i]);
}

/**
 * checkLoanList: EINVAL naming fn unless `list` is an array of `type` (the unloan functions' first check)
 * => returns a snapshot of the list (snapshotList): what was checked is what the caller uses
 */
function checkLoanList(fn: string, arg: unknown, type: typeof VmPage | typeof Anon, what: string): unknown[] {
  if (!Array.isArray(arg)) {
    const hint = arg instanceof Promise ? ' (a promise: a forgotten await?)' : '';
    throw new KernelError('EINVAL', `${fn}: not an array of ${what}s: ${describe(arg)}${hint}`);
  }
  const list = snapshotList(fn, arg, what);
  for (let i = 0; i < list.length; i++) {
    if (!(list[i] instanceof type)) {
      const hint = list[i] instanceof Promise ? ' (a promise: a forgotten await?)' : '';
      throw new KernelError('EINVAL', `${fn}: element ${i} isn't a ${what}: ${describe(list[i])}${hint}`);
    }
  }
  return list;
}

/* describe: a bad value, for an error message (String() of anything, symbols included) */
function describe(v: unknown): string {
  return typeof v === 'object' && v !== null ? Object.prototype.toString.call(v) : String(v);
}

function unloanOne(pg: VmPage): void {
  const uvm = pg.uvm;
  if (uvm.loanHash !== null) checkLoanedBytes(pg);
  pg.loanCount--;
  if (pg.uobject === null && pg.uanon !== null && !pg.anonOwns) {
    pg.loanCount--;
    pg.anonOwns = true;
  }
  uvmPageUnwire(pg);
  uvm.exp.unloans++;
  if (uvm.tracers.length > 0) uvm.trace('unloan', pg);
  if (pg.loanCount > 0) return;
  if (pg.uobject === null && pg.uanon === null) {
    if (pg.flags & PG_BUSY) panic(`uvm_unloanpage: page ${pg.frame} unowned but BUSY`);
    uvmPageFree(pg);
    uvm.exp.orphansFreed++;
  } else if (pg.uobject !== null) {
    pg.uobject.loanReturned(pg);
  }
}

/**
 * uvmUnloanAnons: end loans to anons (uvm_unloananon): drop one reference per anon.
 * => the last reference frees the anon: an O->A page goes back to its object, a page of its own is
 *    freed (or orphaned if it is also on loan to the kernel)
 * => the whole call is checked before any anon is touched: EINVAL unless `anons` is an array of anons
 *    (a promise says "a forgotten await?"); a KernelPanic if an anon has fewer references than the
 *    array lists it
 */
export function uvmUnloanAnons(anonList: readonly Anon[]): void {
  const anons = checkLoanList('uvm_unloananon', anonList, Anon, 'anon') as Anon[];
  try {
    for (let i = 0; i < anons.length; i++) {
      const anon = anons[i];
      if (++anon.unloanMark > anon.ref)
        panic(`uvm_unloananon: anon has ${anon.ref} references, not ${anon.unloanMark}`);
    }
  } finally {
    for (let i = 0; i < anons.length; i++) anons[i].unloanMark = 0;
  }
  for (let i = 0; i < anons.length; i++) {
    anons[i].uvm.exp.unloans++;
    uvmAnonUnref(anons[i]);
  }
}

/**
 * uvmLoanAnonPages: loan to the kernel (A->K) the pages of anons the caller holds -- the A->K half of
 * uvm_loananon, for a borrower that pinned a range earlier by loaning it to anons (uvmLoan 'anon')
 * and now wants the pinned pages wired for I/O (later NetBSD's uvm_loanpage loans pages a caller
 * holds in the same way).
 * => anons: Anons of this kernel, each with a reference the caller holds (ref >= 1); EINVAL
 *    otherwise, checked before any loan is taken
 * => returns the pages in order, each loaned (loanCount++) and wired, every mapping read-only; a
 *    Promise only if some page had to be swapped in or was BUSY
 * => throws EIO (the swap read failed), ENOMEM (no page to swap into); then no loan remains
 */
export function uvmLoanAnonPages(anonList: readonly Anon[]): VmPage[] | Promise<VmPage[]> {
  const anons = checkHeldAnons(anonList);
  const out: VmPage[] = new Array(anons.length);
  for (let i = 0; i < anons.length; i++) {
    if (!loanHeldAnon(anons[i], out, i)) return loanHeldAnonsSlow(anons, out, i);
  }
  return out;
}

/* checkHeldAnons: EINVAL unless anons is an array of anons the caller holds; returns a snapshot of it */
function checkHeldAnons(arg: readonly Anon[]): Anon[] {
  if (!Array.isArray(arg)) throw new KernelError('EINVAL', 'uvm_loananon: anons must be an array');
  const anons = snapshotList('uvm_loananon', arg, 'anon');
  for (const anon of anons) {
    if (!(anon instanceof Anon) || anon.ref < 1) {
      throw new KernelError('EINVAL', `uvm_loananon: ${String(anon)} is not an anon the caller holds`);
    }
  }
  return anons as Anon[];
}

/* loanHeldAnon: A->K-loan a held anon's page into out[i] if it is resident and not BUSY */
function loanHeldAnon(anon: Anon, out: VmPage[], i: number): boolean {
  const pg = anon.page;
  if (pg === null || pg.flags & PG_BUSY) return false;
  if (pg.loanCount > 0) uvmAnonAdopt(anon);
  loanPageToKernel(pg);
  out[i] = pg;
  countAnonPageLoan(pg);
  return true;
}

/* loanHeldAnonsSlow: the rest, bringing pages in from swap (or waiting out BUSY ones) as needed */
async function loanHeldAnonsSlow(anons: readonly Anon[], out: VmPage[], from: number): Promise<VmPage[]> {
  let i = from;
  try {
    while (i < anons.length) {
      if (!loanHeldAnon(anons[i], out, i)) await uvmfaultAnonget(null, anons[i], 0);
      else i++;
    }
  } catch (err) {
    uvmUnloanPages(out.slice(0, i));
    throw err;
  }
  return out;
}

/*
 * firstLoan: a page goes on loan: every mapping of it read-only, so that a write faults (and breaks the
 * loan) instead of changing the bytes under a borrower; under DIAGNOSTIC, note what the bytes are
 */
function firstLoan(pg: VmPage): void {
  const uvm = pg.uvm;
  if (uvm.mmu.pv[pg.frame] !== null) uvm.mmu.pageProtect(pg.frame, Prot.READ);
  if (uvm.loanHash !== null) uvm.loanHash[pg.frame] = hashFrame(pg);
}

/* checkLoanedBytes: DIAGNOSTIC -- a loan given back must find its page as it lent it (else panic) */
function checkLoanedBytes(pg: VmPage): void {
  if (hashFrame(pg) === pg.uvm.loanHash![pg.frame]) return;
  const owner =
    pg.uobject !== null
      ? `${pg.uobject.kind} object, page ${pg.offset}`
      : pg.uanon !== null
        ? 'an anon'
        : 'nobody (an orphan)';
  panic(`uvm_unloanpage: page ${pg.frame} (owner: ${owner}) was written while on loan`);
}

/* hashFrame: FNV-1a over a frame's 32-bit words (cheap, for DIAGNOSTIC only) */
function hashFrame(pg: VmPage): number {
  const ram = pg.uvm.ram;
  const words = new Uint32Array(ram.buffer, pg.frame * PAGE_SIZE, PAGE_SIZE / 4);
  let h = 0x811c9dc5;
  for (let i = 0; i < words.length; i++) h = Math.imul(h ^ words[i], 0x01000193);
  return h >>> 0;
}
