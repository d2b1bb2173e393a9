/*
 * uvm_aobj.ts: anonymous objects (aobj), swap-backed memory objects.
 *
 * An aobj backs shared anonymous memory (mmap with `shared: true`). A page never written is zero-fill
 * (no I/O); a page the pagedaemon evicted lives in a swap slot and is read back on the next get.
 */
import { KernelError } from './errors.js';
import type { Uvm } from './uvm.js';
import { UvmObject } from './uvm_object.js';
import { PG_CLEAN, type VmPage } from './uvm_page.js';

/** AObject: swap-backed memory as an object (NetBSD's aobj): shared anonymous memory. */
export class AObject extends UvmObject {
  /** always 'aobj' */
  readonly kind = 'aobj' as const;
  private readonly swslots: Int32Array;

  /** npages pages, none resident, none on swap */
  constructor(uvm: Uvm, npages: number) {
    super(uvm, npages);
    this.swslots = new Int32Array(npages);
  }

  /** swslot: the swap slot of page idx, or 0 */
  swslot(idx: number): number {
    return this.swslots[idx];
  }

  protected needsIo(idx: number): boolean {
    return this.swslots[idx] !== 0;
  }

  protected async pgoRead(pg: VmPage): Promise<void> {
    const slot = this.swslots[pg.offset];
    await this.uvm.swap.read(this.uvm, slot, pg.frame);
    /* the swap copy goes away: the page is now the only copy (dirty) */
    if (this.swslots[pg.offset] === slot) {
      this.uvm.swap.free(slot);
      this.swslots[pg.offset] = 0;
    }
    pg.flags &= ~PG_CLEAN;
  }

  protected async pgoWrite(pg: VmPage): Promise<void> {
    const idx = pg.offset;
    let slot = this.swslots[idx];
    if (slot === 0) {
      slot = this.uvm.swap.alloc();
      if (slot === 0) throw new KernelError('ENOSPC', 'uao_put: swap is full');
      this.swslots[idx] = slot;
    }
    await this.uvm.swap.write(this.uvm, slot, pg.frame);
  }

  protected onLastRef(): void {
    this.freeAllPages();
    for (let i = 0; i < this.swslots.length; i++) {
      if (this.swslots[i] !== 0) this.uvm.swap.free(this.swslots[i]);
      this.swslots[i] = 0;
    }
  }
}

/*
 * KernelOwnedObject: an object of the kernel's own that lives forever and has no backing store:
 * its pages never come from or go to a pager (they are made zero-filled, and only freed).
 */
abstract class KernelOwnedObject extends UvmObject {
  constructor(uvm: Uvm, npages: number) {
    super(uvm, npages);
    this.ref = Number.POSITIVE_INFINITY;
  }

  protected needsIo(): boolean {
    return false;
  }

  protected async pgoRead(): Promise<void> {}

  protected async pgoWrite(): Promise<void> {}

  protected onLastRef(): void {}
}

/**
 * ZeroObject: NetBSD's uvm_loanzero_object. It holds at most one page, the shared zero page that
 * every zero-fill loan hands out read-only. The page is made on the first zero loan and freed when its
 * last loan ends (current NetBSD keeps it forever); the pagedaemon never takes it.
 */
export class ZeroObject extends KernelOwnedObject {
  /** always 'zero' */
  readonly kind = 'zero' as const;

  /** one page, made on first use */
  constructor(uvm: Uvm) {
    super(uvm, 1);
  }

  /** loanReturned: free the zero page once its last loan has ended */
  override loanReturned(pg: VmPage): void {
    if (pg.loanCount === 0 && pg.uanon === null && pg.uobject === this) this.freePage(pg);
  }
}

/**
 * KernelObject: NetBSD's uvm_kernel_object, owner of the kernel's own memory (mbuf clusters and
 * other pools). Its pages are wired for as long as the kernel holds them, indexed by frame number;
 * they are never paged out and never loaned.
 */
export class KernelObject extends KernelOwnedObject {
  /** always 'kernel' */
  readonly kind = 'kernel' as const;

  /** a slot for every frame */
  constructor(uvm: Uvm, npages: number) {
    super(uvm, npages);
    /* a slot per frame from the start: filled at random frames, a growing array would turn sparse
       (a slow dictionary in V8) */
    for (let i = 0; i < npages; i++) this.pages.push(undefined);
  }
}
