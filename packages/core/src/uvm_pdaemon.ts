/*
 * uvm_pdaemon.ts: the pagedaemon, which keeps free pages above a target by reclaiming inactive ones.
 *
 * It wakes when an allocation leaves fewer than freeMin pages free, and when an allocation finds none
 * (uvm_wait). A pass moves pages from the active to the inactive queue (clearing their referenced bits),
 * then scans the inactive queue giving each referenced page a second chance and reclaiming the rest:
 *
 *   anon page       written to a swap slot, then freed (the anon remembers the slot)
 *   object page     written back if dirty (vnode: to its file; aobj: to swap), then freed
 *   O->A loaned     inactive, only anons borrowing it: written back first if dirty (through its
 *                   object's pager: to the file, or to swap for shared anonymous memory), then taken
 *                   from its object and given to the anon (loan-break event 2); it can be paged out
 *                   as the anon's on a later pass
 *   wired pages     passed over (every page loaned to the kernel is wired)
 *
 * Before scanning, a pass asks the kernel's own caches for their idle pages back (the reclaim hooks:
 * the mbuf cluster pool keeps the pages it grew by). NetBSD's uvm_pageout drains every pool
 * (pool_drain) after its scan; here it comes first, so user pages do not go to swap while a pool's
 * idle pages could be had instead (a pool may keep pages back while one of its takers is growing it).
 *
 * A pass that frees nothing when nothing is free means memory is exhausted: uvm_wait callers get ENOMEM.
 */
import { KernelError } from './errors.js';
import { Prot } from './param.js';
import type { Uvm } from './uvm.js';
import { type Anon, uvmAnonAdopt, uvmAnonRelease } from './uvm_anon.js';
import type { UvmObject } from './uvm_object.js';
import {
  PG_BUSY,
  PG_RELEASED,
  PQ_INACTIVE,
  uvmPageActivate,
  uvmPageDeactivate,
  uvmPageFree,
  uvmPageRemove,
  uvmPageUnbusy,
  uvmPageWaitBusy,
  type VmPage,
} from './uvm_page.js';

/**
 * PageDaemon: the pagedaemon (uvm_pageout): frees memory when it runs short -- reclaim hooks first, then a
 * second-chance scan of the inactive queue, paging out to swap or files.
 */
export class PageDaemon {
  private readonly uvm: Uvm;
  private running: Promise<number> | null = null;
  private scheduled = false;

  /** the kernel starts one at boot */
  constructor(uvm: Uvm) {
    this.uvm = uvm;
  }

  /** wake: run a pass soon if free memory is below target (uvm_kick_pdaemon) */
  wake(): void {
    if (this.scheduled || this.running !== null) return;
    this.scheduled = true;
    queueMicrotask(() => {
      this.scheduled = false;
      if (this.uvm.free.length < this.uvm.freeTarget) this.uvm.background(this.run().then(() => undefined));
    });
  }

  /**
   * wait: sleep until at least one page is free (uvm_wait).
   * => a pass that reclaims nothing while pages are BUSY (I/O in flight) sleeps until one of them is
   *    unbusied, then tries again: such a page is about to become reclaimable
   * => throws ENOMEM if a whole pass could reclaim nothing while no page is free and none is BUSY
   */
  async wait(reason: string): Promise<void> {
    this.uvm.exp.pdaemonWaits++;
    while (this.uvm.free.length === 0) {
      const freed = await this.run();
      if (freed > 0 || this.uvm.free.length > 0) continue;
      const busy = this.uvm.pages.find((pg) => (pg.flags & PG_BUSY) !== 0);
      if (busy === undefined) {
        throw new KernelError('ENOMEM', `${reason}: out of memory (nothing left the pagedaemon can reclaim)`);
      }
      await uvmPageWaitBusy(busy);
    }
  }

  /** run: one pass, or join the pass already under way */
  run(): Promise<number> {
    if (this.running === null) {
      this.running = this.pass().finally(() => {
        this.running = null;
      });
    }
    return this.running;
  }

  private async pass(): Promise<number> {
    const uvm = this.uvm;
    uvm.exp.pdaemonRuns++;
    let freed = uvm.free.length < uvm.freeTarget ? uvm.reclaim() : 0;
    for (let round = 0; round < 3 && uvm.free.length < uvm.freeTarget; round++) {
      this.sweepWired();
      this.balance();
      freed += await this.scanInactive();
    }
    return freed;
  }

  /*
   * sweepWired: move wired pages off the inactive queue to the active one. A page wired (loaned)
   * while inactive keeps its place there (uvm_page.ts); left there, such pages would fill the
   * inactive target and starve the scan of pages it could reclaim.
   */
  private sweepWired(): void {
    const uvm = this.uvm;
    for (let pg = uvm.inactive.head; pg !== null; ) {
      const next: VmPage | null = pg.next;
      if (pg.wireCount > 0) {
        uvm.inactive.remove(pg);
        uvm.active.insertTail(pg);
      }
      pg = next;
    }
  }

  /* balance: move unwired active pages to the inactive queue until a third of the unwired are inactive */
  private balance(): void {
    const uvm = this.uvm;
    const unwired = uvm.active.length + uvm.inactive.length - uvm.wiredPages;
    const want = Math.max(uvm.freeTarget * 2, Math.floor(unwired / 3));
    for (let pg = uvm.active.head; pg !== null && uvm.inactive.length < want; ) {
      const next: VmPage | null = pg.next;
      if (pg.wireCount === 0) uvmPageDeactivate(pg);
      pg = next;
    }
  }

  private async scanInactive(): Promise<number> {
    const uvm = this.uvm;
    const candidates: VmPage[] = [];
    for (let pg = uvm.inactive.head; pg !== null; pg = pg.next) candidates.push(pg);
    let freed = 0;
    for (const pg of candidates) {
      if (uvm.free.length >= uvm.freeTarget) break;
      if (pg.queue !== PQ_INACTIVE || pg.flags & PG_BUSY || pg.wireCount > 0) continue;
      if (uvm.mmu.isReferenced(pg.frame)) {
        uvm.mmu.clearReference(pg.frame);
        uvmPageActivate(pg);
        continue;
      }
      freed += await this.reclaim(pg);
    }
    return freed;
  }

  /* reclaim: try to free one inactive page; returns the pages freed (0 or 1) */
  private async reclaim(pg: VmPage): Promise<number> {
    if (pg.uobject !== null) {
      /* the zero page stays in its object for as long as it is on loan (its pager has no store) */
      if (pg.uobject === this.uvm.zeroObject) return 0;
      if (pg.loanCount > 0) return this.takeLoanedFromObject(pg);
      return this.pageoutObjectPage(pg);
    }
    if (pg.uanon !== null) {
      if (!pg.anonOwns) uvmAnonAdopt(pg.uanon);
      if (pg.loanCount > 0) return 0;
      return this.swapoutAnonPage(pg);
    }
    return 0;
  }

  /**
   * takeLoanedFromObject: loan-break event 2, "pageout of an inactive O->A loaned page": the object
   * lets go of a page borrowed only by anons (not wired), and the anon adopts it; as the anon's own
   * page it can be swapped out on a later pass.
   * => a dirty page is first paged out through its object's pager (a file page to its file, a shared
   *    anonymous page to swap), as the seed-era pagedaemon did with PGO_CLEANIT|PGO_FREE: only a clean
   *    page may leave its object, whose pager then has the bytes
   * => the page stays BUSY from the write-back until it has left the object: a fault or loan that
   *    slept on it meanwhile wakes to find it gone and looks again (had we unbusied it first, the
   *    waker could take it BUSY, and we would take it from the object under it)
   * => returns 0 (no page is freed here; the page changes owner)
   */
  private async takeLoanedFromObject(pg: VmPage): Promise<number> {
    const uvm = this.uvm;
    const obj = pg.uobject!;
    if (pg.wireCount > 0 || pg.uanon === null) return 0;
    uvm.mmu.pageProtect(pg.frame, Prot.NONE);
    const cleaned = obj.isDirty(pg);
    if (cleaned && !(await this.cleanLoanedPage(pg, obj))) return 0;
    uvmPageRemove(pg);
    uvmAnonAdopt(pg.uanon!);
    if (cleaned) uvmPageUnbusy(pg);
    uvm.exp.loanBreaks++;
    uvm.trace('loanbreak', pg, 'pagedaemon');
    return 0;
  }

  /**
   * cleanLoanedPage: write a dirty O->A page back through its object's pager (pgo_put).
   * => returns true if the page is now clean and still the object's, loaned only to its anon,
   *    unwired, inactive and unmapped: ready to be taken from the object, and still BUSY (ours) for
   *    the caller to unbusy once it has; false if the write failed (the page stays dirty and is
   *    reactivated) or the world moved while it slept -- then the page is no longer BUSY
   */
  private async cleanLoanedPage(pg: VmPage, obj: UvmObject): Promise<boolean> {
    pg.flags |= PG_BUSY;
    try {
      await obj.put(pg);
    } catch {
      uvmPageUnbusy(pg);
      uvmPageActivate(pg);
      return false;
    }
    if (pg.flags & PG_RELEASED) {
      obj.releasePage(pg);
      return false;
    }
    const ready =
      pg.uobject === obj &&
      pg.uanon !== null &&
      pg.loanCount > 0 &&
      pg.wireCount === 0 &&
      pg.queue === PQ_INACTIVE &&
      this.uvm.mmu.pv[pg.frame] === null &&
      !obj.isDirty(pg);
    if (!ready) uvmPageUnbusy(pg);
    return ready;
  }

  private async pageoutObjectPage(pg: VmPage): Promise<number> {
    const uvm = this.uvm;
    const obj = pg.uobject!;
    uvm.mmu.pageProtect(pg.frame, Prot.NONE);
    if (obj.isDirty(pg)) {
      pg.flags |= PG_BUSY;
      try {
        await obj.put(pg);
      } catch {
        uvmPageUnbusy(pg);
        uvmPageActivate(pg);
        return 0;
      }
      if (pg.flags & PG_RELEASED) {
        obj.releasePage(pg);
        return 1;
      }
      uvmPageUnbusy(pg);
      if (pg.uobject !== obj || pg.loanCount > 0 || pg.queue !== PQ_INACTIVE) return 0;
    }
    uvmPageFree(pg);
    uvm.exp.pageouts++;
    uvm.trace('pageout', pg);
    return 1;
  }

  private async swapoutAnonPage(pg: VmPage): Promise<number> {
    const uvm = this.uvm;
    const anon = pg.uanon!;
    const slot = anon.swslot !== 0 ? anon.swslot : uvm.swap.alloc();
    if (slot === 0) return 0;
    const hadSlot = anon.swslot !== 0;
    anon.swslot = slot;
    pg.flags |= PG_BUSY;
    uvm.mmu.pageProtect(pg.frame, Prot.NONE);
    try {
      await uvm.swap.write(uvm, slot, pg.frame);
    } catch {
      return this.swapoutFailed(pg, anon, hadSlot);
    }
    if (pg.flags & PG_RELEASED) {
      pg.flags &= ~PG_RELEASED;
      uvmAnonRelease(anon);
      return 1;
    }
    uvmPageUnbusy(pg);
    uvmPageFree(pg);
    uvm.exp.pageouts++;
    uvm.trace('pageout', pg);
    return 1;
  }

  /* swapoutFailed: the swap write failed: the anon keeps its page (and loses the new slot) */
  private swapoutFailed(pg: VmPage, anon: Anon, hadSlot: boolean): number {
    if (pg.flags & PG_RELEASED) {
      pg.flags &= ~PG_RELEASED;
      uvmAnonRelease(anon);
      return 1;
    }
    if (!hadSlot) {
      this.uvm.swap.free(anon.swslot);
      anon.swslot = 0;
    }
    uvmPageUnbusy(pg);
    uvmPageActivate(pg);
    return 0;
  }
}
