/*
 * uvm_fault.ts: the page fault handler (uvm_fault).
 *
 * A fault at va looks up the map entry, then resolves the page in one of two layers:
 *
 *   upper (an anon in the entry's amap): bring the anon's page in from swap if needed; on a write,
 *     copy it to a new anon if others share the anon (copy-on-write), or -- if the page is on loan --
 *     *break the loan*: copy the data to a new page for the anon and leave the old page, unchanged, to
 *     its borrowers.
 *   lower (the object, or zero-fill): get the page from the pager (with the unlock/relock dance around
 *     I/O); on a write to a private mapping, promote it: copy into a new anon. On a write to a shared
 *     mapping of a loaned object page, break the loan: a new page takes the old one's place in the object.
 *
 * Read faults on loaned or shared pages map them read-only, so the next write faults again.
 * Anything that sleeps revalidates with the map version when it wakes, and starts over if the world
 * moved (ReFault). Running out of pages waits for the pagedaemon; ENOMEM if nothing is reclaimable, or
 * if the fault cannot keep the frames it needs (MAX_STARVED_REFAULTS).
 */
import { KernelError } from './errors.js';
import { atop, checkAccess, checkAddress, hex, PAGE_SIZE, Prot } from './param.js';
import type { Uvm } from './uvm.js';
import { amapAdd } from './uvm_amap.js';
import { type Anon, uvmAnonAdopt, uvmAnonAlloc, uvmAnonRelease, uvmAnonUnref } from './uvm_anon.js';
import { type MapEntry, uvmMapAmapCopy, VmMap } from './uvm_map.js';
import { UNLOCK, type UvmObject } from './uvm_object.js';
import {
  PG_BUSY,
  PG_CLEAN,
  PG_RELEASED,
  uvmPageActivate,
  uvmPageAlloc,
  uvmPageCopy,
  uvmPageDequeue,
  uvmPageFree,
  uvmPageInsert,
  uvmPageRemove,
  uvmPageUnbusy,
  uvmPageWaitBusy,
  type VmPage,
} from './uvm_page.js';

/* one fault's view of where it is (struct uvm_faultinfo) */
interface FaultInfo {
  map: VmMap;
  entry: MapEntry;
  va: number;
  version: number;
  /* page index within the entry */
  idx: number;
}

/**
 * uvmFault: resolve a fault at va for an access (READ, WRITE).
 * => map a VmMap, va a non-negative safe integer (any address in the page: it is rounded down, as
 *    uvm_fault does with trunc_page), access Prot bits 1..7: else EINVAL, before anything is done
 * => returns when a retry of the access will succeed (it may still fault again if the world changes)
 * => throws EFAULT (unmapped, a torn-down map, or the entry's protection forbids the access; a file
 *    page past the end of its file), ENOMEM, EIO
 */
export function uvmFault(map: VmMap, va: number, access: number): Promise<void> {
  let page: number;
  try {
    page = checkFaultArgs('uvm_fault', map, va, access);
    if (uvmFaultTry(map, page, access)) return Promise.resolve();
  } catch (err) {
    return Promise.reject(err);
  }
  return uvmFaultSlow(map, page, access);
}

/**
 * checkFaultArgs: the checks uvmFault and uvmFaultTry make of their arguments
 * => returns va rounded down to its page
 * => throws EINVAL (not a map, a bad address, a bad access), EFAULT (the map has been torn down)
 */
function checkFaultArgs(fn: string, map: VmMap, va: number, access: number): number {
  if (!(map instanceof VmMap)) throw new KernelError('EINVAL', `${fn}: not a vm_map`);
  checkAddress(fn, va, false);
  checkAccess(fn, access);
  if (map.dead) throw new KernelError('EFAULT', `${fn}: the map has been torn down`);
  return va - (va % PAGE_SIZE);
}

/**
 * uvmFaultTry: resolve a fault at once if it needs no sleep and no new page: a resident anon page that
 * is only missing from the pmap or write-protected -- typically the first write after its loans ended
 * (a loan leaves every mapping read-only) or after fork's needs-copy was resolved elsewhere.
 * => arguments as uvmFault's (EINVAL)
 * => true: the access will now succeed; false: nothing was done, call uvmFault
 * => throws EFAULT (unmapped, a torn-down map, or the entry's protection forbids the access)
 */
export function uvmFaultTry(map: VmMap, va: number, access: number): boolean {
  va = checkFaultArgs('uvm_fault', map, va, access);
  const entry = faultLookup(map, va, access);
  if (entry.needsCopy || entry.amap === null) return false;
  const anon = entry.amap.slots[entry.amapSlot + (va - entry.start) / PAGE_SIZE];
  if (anon === null) return false;
  const pg = anon.page;
  if (pg === null || pg.flags & PG_BUSY || !pg.anonOwns) return false;
  const shared = anon.ref > 1 || pg.loanCount > 0;
  if (access & Prot.WRITE && shared) return false;
  map.uvm.exp.faults++;
  map.pmap.enter(atop(va), pg.frame, shared ? entry.prot & ~Prot.WRITE : entry.prot);
  uvmPageActivate(pg);
  return true;
}

/* faultLookup: the entry at va, if it allows the access (else EFAULT) */
function faultLookup(map: VmMap, va: number, access: number): MapEntry {
  const entry = map.lookup(va);
  if (entry === null) throw new KernelError('EFAULT', `uvm_fault: ${hex(va)} is not mapped`);
  if ((entry.prot & access) !== access) {
    throw new KernelError(
      'EFAULT',
      `uvm_fault: ${hex(va)} protection ${entry.prot} forbids access ${access}`,
    );
  }
  return entry;
}

async function uvmFaultSlow(map: VmMap, va: number, access: number): Promise<void> {
  const exp = map.uvm.exp;
  exp.faults++;
  for (let starved = 0; ; ) {
    const before = memoryEvents(map.uvm);
    if (await uvmFaultOnce(map, va, access)) return;
    /* ReFault -- counting the refaults, of this one fault, during which memory ran short */
    starved = uvmStarved(map.uvm, before, starved, 'uvm_fault', va);
  }
}

/**
 * memoryEvents: a count that moves whenever memory runs short -- someone waits for the pagedaemon, or
 * it pages something out (uvmStarved compares it before and after a try)
 */
export function memoryEvents(uvm: Uvm): number {
  return uvm.exp.pdaemonWaits + uvm.exp.pageouts;
}

/**
 * uvmStarved: count one more try that made no progress, if memory ran short meanwhile (memoryEvents
 * moved since `before`), and give up past MAX_STARVED_REFAULTS; the caller starts the count afresh
 * only when it makes progress (a try that waited on a BUSY page between two starved ones is not that)
 * => returns the new count; throws ENOMEM naming fn and va past the limit
 * => for loops that fault page after page (Proc's copyin/copyout): a page faulted in can be taken
 *    again by the pagedaemon before the access that wanted it
 */
export function uvmStarved(uvm: Uvm, before: number, starved: number, fn: string, va: number): number {
  const n = memoryEvents(uvm) !== before ? starved + 1 : starved;
  if (n >= MAX_STARVED_REFAULTS) {
    throw new KernelError(
      'ENOMEM',
      `${fn}: ${hex(va)}: out of memory (no frame the pagedaemon frees stays ours)`,
    );
  }
  return n;
}

/*
 * A fault that refaults this many times with memory short each time gives up with ENOMEM: it needs
 * more frames at once than can be kept. With one reclaimable frame, a copy-on-write fault of a page on
 * swap pages it in, waits for a frame for the copy -- and the wait's pass reclaims the page it just
 * brought in, so the wait "succeeds" and the fault starts over, for ever; two faults (or a fault and
 * the pagedaemon, woken as free memory runs low) take the one frame from each other the same way.
 * (NetBSD's fault holds the anon locked from the page-in to pmap_enter, so the pagedaemon can't take
 * the page in that window; a fault that needs two frames with one reclaimable would still wait for
 * ever there. A real machine has more than one frame to spare; this kernel may have 16 in all.)
 */
const MAX_STARVED_REFAULTS = 32;

/* one try; false means "ReFault" */
async function uvmFaultOnce(map: VmMap, va: number, access: number): Promise<boolean> {
  const entry = faultLookup(map, va, access);
  if (entry.needsCopy && (access & Prot.WRITE || entry.object === null)) uvmMapAmapCopy(map, entry);
  const ufi: FaultInfo = { map, entry, va, version: map.version, idx: atop(va - entry.start) };
  const anon = entry.amap !== null ? entry.amap.slots[entry.amapSlot + ufi.idx] : null;
  if (anon !== null) return faultUpper(ufi, anon, access);
  if (entry.object !== null) return faultLower(ufi, entry.object, access);
  return faultZeroFill(ufi);
}

/**
 * uvmfaultAnonget: make an anon's page resident (uvmfault_anonget).
 * => map: the map the caller found the anon in (its version is checked after a sleep), or null for a
 *    caller that holds a reference to the anon itself (a borrower: uvmLoanAnonPages)
 * => returns the page (not BUSY), or null when the caller must look up again (it slept and the map
 *    changed, or the anon went away)
 * => adopts a page the anon was loaned by an object that has since let go of it
 * => throws EIO (or the pager's KernelError) when the swap read fails; the anon keeps its slot
 */
export async function uvmfaultAnonget(
  map: VmMap | null,
  anon: Anon,
  version: number,
): Promise<VmPage | null> {
  const uvm = anon.uvm;
  const pg = anon.page;
  if (pg !== null) {
    if (pg.flags & PG_BUSY) {
      await uvmPageWaitBusy(pg);
      return null;
    }
    if (pg.loanCount > 0) uvmAnonAdopt(anon);
    return pg;
  }
  const fresh = uvmPageAlloc(uvm, null, 0, anon);
  if (fresh === null) {
    await uvm.wait('uvmfault_anonget');
    return null;
  }
  const slot = anon.swslot;
  try {
    await uvm.swap.read(uvm, slot, fresh.frame);
  } catch (err) {
    anongetFailed(anon, fresh);
    throw err instanceof KernelError
      ? err
      : new KernelError('EIO', `uvmfault_anonget: swap read failed: ${String(err)}`, { cause: err });
  }
  if (fresh.flags & PG_RELEASED) {
    uvmAnonRelease(anon);
    return null;
  }
  uvm.swap.free(slot);
  anon.swslot = 0;
  uvm.exp.pageins++;
  uvm.trace('pagein', fresh);
  fresh.flags &= ~PG_CLEAN;
  uvmPageUnbusy(fresh);
  uvmPageActivate(fresh);
  return map === null || map.version === version ? fresh : null;
}

/*
 * anongetFailed: a swap-in failed: drop the page it was filling (waking anyone who waited for it);
 * the anon keeps its swap slot, so a later fault can try again -- or, if the anon was freed meanwhile
 * (RELEASED), let it go now.
 */
function anongetFailed(anon: Anon, pg: VmPage): void {
  if (pg.flags & PG_RELEASED) uvmAnonRelease(anon);
  else uvmPageFree(pg);
}

/*
 * faultUpper: the page is in the anon layer.
 * => after anonget (which always yields, and may sleep) everything is revalidated; from there on
 *    nothing awaits until the page is mapped and queued, except to wait for memory and refault
 */
async function faultUpper(ufi: FaultInfo, anon: Anon, access: number): Promise<boolean> {
  const { map, entry } = ufi;
  const slot = entry.amapSlot + ufi.idx;
  let pg = await uvmfaultAnonget(map, anon, ufi.version);
  if (pg === null || map.version !== ufi.version || entry.amap?.slots[slot] !== anon) return false;
  if (anon.page !== pg || pg.flags & PG_BUSY) return false;
  let prot = entry.prot;
  if (pg.loanCount > 0) {
    if (!(access & Prot.WRITE)) prot &= ~Prot.WRITE;
    else if (anon.ref === 1) {
      const copy = breakAnonLoan(ufi, anon, pg);
      if (copy === null) return waitForMemory(ufi, 'flt_noram2');
      pg = copy;
    }
  }
  if (access & Prot.WRITE && anon.ref > 1) {
    const copy = cowAnon(ufi, anon, pg, slot);
    if (copy === null) return waitForMemory(ufi, 'flt_noram3');
    pg = copy;
  } else if (anon.ref > 1 || entry.needsCopy) {
    prot &= ~Prot.WRITE;
  }
  map.pmap.enter(atop(ufi.va), pg.frame, prot);
  uvmPageActivate(pg);
  return true;
}

/* waitForMemory: no page was free: wait for the pagedaemon, then ReFault (throws ENOMEM) */
async function waitForMemory(ufi: FaultInfo, reason: string): Promise<false> {
  await ufi.map.uvm.wait(reason);
  return false;
}

/*
 * breakAnonLoan: a write to a loaned page of an anon nobody else shares: give the anon a copy and
 * leave the loaned page to its borrowers (an object keeps its O->A page; an anon's own page becomes
 * an orphan that the last unloan frees).
 * => returns the new page, or null when no page is free (the caller waits and refaults); never sleeps
 */
function breakAnonLoan(ufi: FaultInfo, anon: Anon, old: VmPage): VmPage | null {
  const uvm = ufi.map.uvm;
  const pg = uvmPageAlloc(uvm, null, 0, null);
  if (pg === null) return null;
  uvmPageCopy(old, pg);
  uvm.mmu.pageProtect(old.frame, Prot.NONE);
  const obj = old.uobject;
  if (obj !== null) old.loanCount--;
  old.uanon = null;
  old.anonOwns = false;
  anon.page = pg;
  pg.uanon = anon;
  pg.anonOwns = true;
  pg.flags &= ~PG_CLEAN;
  uvmPageUnbusy(pg);
  uvm.exp.loanBreaks++;
  uvm.trace('loanbreak', old, 'anon');
  if (obj !== null) obj.loanReturned(old);
  else {
    uvmPageDequeue(old);
    uvm.trace('orphan', old);
  }
  return pg;
}

/*
 * cowAnon: copy-on-write of a shared anon into a new one in the same slot.
 * => returns the new page, or null when no page is free (the caller waits and refaults); never sleeps
 */
function cowAnon(ufi: FaultInfo, anon: Anon, old: VmPage, slot: number): VmPage | null {
  const uvm = ufi.map.uvm;
  const na = uvmAnonAlloc(uvm);
  const pg = uvmPageAlloc(uvm, null, 0, na);
  if (pg === null) {
    uvmAnonUnref(na);
    return null;
  }
  uvmPageCopy(old, pg);
  pg.flags &= ~PG_CLEAN;
  uvmPageUnbusy(pg);
  amapAdd(ufi.entry.amap!, slot, na, true);
  anon.ref--;
  uvm.exp.cowFaults++;
  return pg;
}

async function faultLower(ufi: FaultInfo, obj: UvmObject, access: number): Promise<boolean> {
  const { map, entry } = ufi;
  const slot = entry.amapSlot + ufi.idx;
  let pg = obj.getLocked(entry.objOffset + ufi.idx);
  if (pg === UNLOCK) {
    pg = await obj.get(entry.objOffset + ufi.idx);
    if (pg.flags & PG_RELEASED) {
      obj.releasePage(pg);
      return false;
    }
    if (map.version !== ufi.version || (entry.amap !== null && entry.amap.slots[slot] !== null)) {
      uvmPageActivate(pg);
      uvmPageUnbusy(pg);
      return false;
    }
  }
  if (access & Prot.WRITE && entry.copyOnWrite) return promote(ufi, pg, slot);
  let prot = entry.prot;
  if (entry.copyOnWrite) prot &= ~Prot.WRITE;
  if (pg.loanCount > 0) {
    if (!(access & Prot.WRITE)) prot &= ~Prot.WRITE;
    else {
      const copy = breakObjectLoan(ufi, obj, pg);
      if (copy === null) return waitForMemory(ufi, 'flt_noram6');
      pg = copy;
    }
  }
  if (access & Prot.WRITE) pg.flags &= ~PG_CLEAN;
  map.pmap.enter(atop(ufi.va), pg.frame, prot);
  uvmPageActivate(pg);
  uvmPageUnbusy(pg);
  return true;
}

/* promote: a write to a private mapping of an object page: copy it into a new anon. */
async function promote(ufi: FaultInfo, objPage: VmPage, slot: number): Promise<boolean> {
  const uvm = ufi.map.uvm;
  const anon = uvmAnonAlloc(uvm);
  const pg = uvmPageAlloc(uvm, null, 0, anon);
  if (pg === null) {
    uvmAnonUnref(anon);
    uvmPageActivate(objPage);
    uvmPageUnbusy(objPage);
    await uvm.wait('flt_noram4');
    return false;
  }
  uvmPageCopy(objPage, pg);
  uvmPageActivate(objPage);
  uvmPageUnbusy(objPage);
  return enterNewAnon(ufi, anon, pg, slot, 'cow');
}

/* faultZeroFill: first touch of anonymous memory: a new zero-filled anon. */
async function faultZeroFill(ufi: FaultInfo): Promise<boolean> {
  const { map, entry } = ufi;
  if (!entry.copyOnWrite || entry.amap === null) {
    throw new KernelError('EFAULT', `uvm_fault: ${hex(ufi.va)} has no backing`);
  }
  const uvm = map.uvm;
  const anon = uvmAnonAlloc(uvm);
  const pg = uvmPageAlloc(uvm, null, 0, anon, true);
  if (pg === null) {
    uvmAnonUnref(anon);
    await uvm.wait('flt_noram5');
    return false;
  }
  return enterNewAnon(ufi, anon, pg, entry.amapSlot + ufi.idx, 'zero');
}

function enterNewAnon(ufi: FaultInfo, anon: Anon, pg: VmPage, slot: number, why: 'cow' | 'zero'): boolean {
  const { map, entry } = ufi;
  const uvm = map.uvm;
  pg.flags &= ~PG_CLEAN;
  uvmPageUnbusy(pg);
  amapAdd(entry.amap!, slot, anon, false);
  if (why === 'cow') uvm.exp.cowFaults++;
  else uvm.exp.zeroFills++;
  map.pmap.enter(atop(ufi.va), pg.frame, entry.prot);
  uvmPageActivate(pg);
  return true;
}

/*
 * breakObjectLoan: a write through a shared mapping to a loaned object page: a copy takes the page's
 * place in the object; the old page, unchanged, stays with its borrowers (uvm_pagerealloc twice).
 * => returns the new page BUSY; or null when no page is free, having let go of `old` (the caller
 *    waits and refaults); never sleeps
 */
function breakObjectLoan(ufi: FaultInfo, obj: UvmObject, old: VmPage): VmPage | null {
  const uvm = ufi.map.uvm;
  const pg = uvmPageAlloc(uvm, null, 0, null);
  if (pg === null) {
    uvmPageActivate(old);
    uvmPageUnbusy(old);
    return null;
  }
  uvmPageCopy(old, pg);
  pg.flags &= ~PG_CLEAN;
  uvm.mmu.pageProtect(old.frame, Prot.NONE);
  uvmPageUnbusy(old);
  const offset = old.offset;
  uvmPageRemove(old);
  if (old.uanon === null) uvmPageDequeue(old);
  uvmPageInsert(pg, obj, offset);
  uvm.exp.loanBreaks++;
  uvm.trace('loanbreak', old, 'object');
  uvm.trace('orphan', old);
  return pg;
}
