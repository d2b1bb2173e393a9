/*
 * uvm_object.ts: memory objects, the lower layer of a map entry, and their pager interface.
 *
 * An object is a sized array of pages backed by a pager: a vnode (a real file) or an aobj (swap).
 * The pager interface follows NetBSD's pgo_get in its two modes:
 *
 *   getLocked(idx)  "PGO_LOCKED": synchronous; returns the resident page, made BUSY for the caller,
 *                   or UNLOCK when getting it needs I/O or a wait: the caller must drop its state
 *                   (its map lookup) and call get().
 *   get(idx)        asynchronous; waits for a BUSY page, allocates (waiting for the pagedaemon if it
 *                   must), reads it in; returns it BUSY. While it awaits, anything may happen: the
 *                   caller revalidates afterwards (map version, RELEASED, amap slot), as the seed does.
 *
 * Whoever wants to free a BUSY page (truncate, last reference) marks it RELEASED instead; the I/O's
 * owner then calls releasePage(). A page loaned out when its object frees it becomes an orphan.
 * An object whose last reference went is dead: a get() that slept meanwhile fails (EFAULT) rather
 * than bring a page into it, since nothing would ever free that page.
 */
import { KernelError, kassert } from './errors.js';
import { Prot } from './param.js';
import type { Uvm } from './uvm.js';
import {
  PG_BUSY,
  PG_CLEAN,
  PG_FAKE,
  PG_RELEASED,
  uvmPageActivate,
  uvmPageAlloc,
  uvmPageFree,
  uvmPageUnbusy,
  uvmPageWaitBusy,
  type VmPage,
} from './uvm_page.js';

/** what getLocked() says when the page can't be had without sleeping */
export const UNLOCK = 'unlock' as const;

/** What backs an object: a file (vnode), swap (aobj), the zero page, kernel memory. */
export type ObjectKind = 'vnode' | 'aobj' | 'zero' | 'kernel';

/**
 * UvmObject: a memory object (NetBSD's uvm_object) -- a file, shared anonymous memory, the zero page or
 * kernel memory -- with its resident pages and its pager. Users see it as a page's owner (pg.uobject); only
 * the kernel changes it.
 */
export abstract class UvmObject {
  /** the VM system the object belongs to */
  readonly uvm: Uvm;
  /** what backs it */
  abstract readonly kind: ObjectKind;
  /** @readonly size in pages */
  npages: number;
  /** @internal pages by page index */
  readonly pages: (VmPage | undefined)[] = [];
  /** @readonly how many of its pages are in RAM */
  resident = 0;
  /** @readonly references: the map entries that map it */
  ref = 1;
  /** @readonly its last reference is gone: it takes no new page */
  dead = false;

  /** @internal the kernel makes objects */
  constructor(uvm: Uvm, npages: number) {
    this.uvm = uvm;
    this.npages = npages;
    uvm.objects.add(this);
  }

  /** @internal pgoRead: fill a new BUSY page at its offset (async I/O); throws KernelError on failure */
  protected abstract pgoRead(pg: VmPage): Promise<void>;
  /** @internal pgoWrite: write a page back to its backing store */
  protected abstract pgoWrite(pg: VmPage): Promise<void>;
  /** @internal needsIo: does a non-resident page at idx have to be read (else it is zero-filled) */
  protected abstract needsIo(idx: number): boolean;
  /** @internal the object lost its last reference */
  protected abstract onLastRef(): void;

  /**
   * @internal
   * getLocked: the synchronous half of pgo_get (PGO_LOCKED).
   * => returns the page, BUSY for the caller; or UNLOCK (caller must unlock and call get())
   * => throws EFAULT for an index beyond the object
   */
  getLocked(idx: number): VmPage | typeof UNLOCK {
    this.checkIndex(idx);
    const pg = this.pages[idx];
    if (pg !== undefined) {
      if (pg.flags & PG_BUSY) return UNLOCK;
      pg.flags |= PG_BUSY;
      return pg;
    }
    if (this.needsIo(idx)) return UNLOCK;
    const fresh = uvmPageAlloc(this.uvm, this, idx, null, true);
    if (fresh === null) return UNLOCK;
    fresh.flags &= ~PG_FAKE;
    fresh.flags &= ~PG_CLEAN;
    uvmPageActivate(fresh);
    return fresh;
  }

  /**
   * @internal
   * get: the asynchronous half of pgo_get.
   * => returns the page BUSY (possibly RELEASED meanwhile: the caller must check)
   * => throws EFAULT past the end, or once the object has died (its last mapping went while we slept
   *    on a BUSY page or for memory: a page brought into a dead object would never be freed), ENOMEM
   *    when no page can be reclaimed, EIO when the read fails
   */
  async get(idx: number): Promise<VmPage> {
    for (;;) {
      this.checkIndex(idx);
      const pg = this.pages[idx];
      if (pg !== undefined) {
        if (pg.flags & PG_BUSY) {
          await uvmPageWaitBusy(pg);
          continue;
        }
        pg.flags |= PG_BUSY;
        return pg;
      }
      const fresh = uvmPageAlloc(this.uvm, this, idx, null, !this.needsIo(idx));
      if (fresh === null) {
        await this.uvm.wait('pgo_get');
        continue;
      }
      if (fresh.flags & PG_FAKE && this.needsIo(idx)) await this.readIn(fresh);
      else fresh.flags &= ~(PG_FAKE | PG_CLEAN);
      uvmPageActivate(fresh);
      return fresh;
    }
  }

  private async readIn(pg: VmPage): Promise<void> {
    try {
      await this.pgoRead(pg);
    } catch (err) {
      if (pg.flags & PG_RELEASED || pg.uobject !== this) this.releasePage(pg);
      else uvmPageFree(pg);
      throw err instanceof KernelError
        ? err
        : new KernelError('EIO', `pgo_get: ${String(err)}`, { cause: err });
    }
    this.uvm.exp.pageins++;
    pg.flags &= ~PG_FAKE;
  }

  /**
   * @internal
   * put: write a BUSY page back if it is dirty (pgo_put); leaves it BUSY and CLEAN.
   * => if the write fails the page stays dirty (not CLEAN), so a later put tries again
   */
  async put(pg: VmPage): Promise<void> {
    kassert((pg.flags & PG_BUSY) !== 0, `pgo_put: ${pg} not busy`);
    if (!this.isDirty(pg)) return;
    this.uvm.mmu.pageProtect(pg.frame, Prot.READ);
    this.uvm.mmu.clearModify(pg.frame);
    pg.flags |= PG_CLEAN;
    try {
      await this.pgoWrite(pg);
    } catch (err) {
      pg.flags &= ~PG_CLEAN;
      throw err;
    }
  }

  /** @internal */
  isDirty(pg: VmPage): boolean {
    return (pg.flags & PG_CLEAN) === 0 || this.uvm.mmu.isModified(pg.frame);
  }

  /**
   * @internal
   * releasePage: free a page that was RELEASED while BUSY (pgo_releasepg).
   */
  releasePage(pg: VmPage): void {
    pg.flags &= ~PG_RELEASED;
    uvmPageUnbusy(pg);
    if (pg.uobject === this) uvmPageFree(pg);
    if (this.dead && this.resident === 0) this.uvm.objects.delete(this);
  }

  /**
   * @internal
   * freePage: the object drops one of its pages (truncate, flush with free, last reference).
   * => BUSY pages are marked RELEASED for their I/O owner; loaned pages become orphans
   */
  freePage(pg: VmPage): void {
    this.uvm.mmu.pageProtect(pg.frame, Prot.NONE);
    if (pg.flags & PG_BUSY) {
      pg.flags |= PG_RELEASED;
      return;
    }
    uvmPageFree(pg);
  }

  /** @internal truncate: drop every page at index >= npages, and shrink the object (e.g. a file truncated). */
  truncate(npages: number): void {
    for (let i = npages; i < this.pages.length; i++) {
      const pg = this.pages[i];
      if (pg !== undefined) this.freePage(pg);
    }
    this.npages = Math.min(this.npages, npages);
  }

  /** @internal reference / detach: objects live while map entries (or the kernel) reference them. */
  reference(): void {
    this.ref++;
  }

  /** @internal */
  detach(): void {
    kassert(this.ref > 0, `uvm_object_detach: ${this.kind} object has no references`);
    if (--this.ref === 0) {
      this.dead = true;
      this.onLastRef();
    }
  }

  /** @internal loanReturned: an anon gave back a page it had borrowed (O->A); most objects ignore it. */
  loanReturned(_pg: VmPage): void {}

  /** @internal checkIndex: EFAULT unless idx is a page of this object, and the object is still alive */
  protected checkIndex(idx: number): void {
    if (this.dead) {
      throw new KernelError('EFAULT', `pgo_get: the ${this.kind} object has gone (its last mapping went)`);
    }
    if (idx < 0 || idx >= this.npages) {
      throw new KernelError('EFAULT', `pgo_get: page ${idx} beyond the end of a ${this.kind} object`);
    }
  }

  /** @internal freeAllPages: drop every page; used when the object dies. */
  protected freeAllPages(): void {
    for (let i = 0; i < this.pages.length; i++) {
      const pg = this.pages[i];
      if (pg !== undefined) this.freePage(pg);
    }
    if (this.resident === 0) this.uvm.objects.delete(this);
  }
}
