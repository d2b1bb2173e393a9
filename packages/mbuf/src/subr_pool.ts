/*
 * subr_pool.ts: fixed-size item pools carved out of wired kernel pages (NetBSD's pool(9)).
 *
 * mbuf clusters live in RAM like everything else: a pool takes wired pages of kernel memory from the
 * VM system (uvmKmAllocPage), maps each read-write into kernel space, and cuts it into items (two 2 KiB
 * clusters per page). An item is named by its physical address (its byte offset in RAM); its Buffer
 * view and its kernel va are computed once, when its page joins the pool, so getting and putting items
 * allocates nothing. When the pool is at its page limit, get() waits for a put().
 */
import {
  type Kernel,
  KernelError,
  PAGE_SIZE,
  Prot,
  uvmKmAllocPage,
  uvmKmFreePage,
  type VmPage,
} from '@loanout/core';

export class Pool {
  readonly name: string;
  readonly itemSize: number;
  readonly perPage: number;
  readonly maxPages: number;
  private readonly kernel: Kernel;
  /* free items by physical address */
  private readonly freeItems: number[] = [];
  /* the pool's pages by frame: [page, kernel va] */
  private readonly pages = new Map<number, { pg: VmPage; kva: number; free: number }>();
  /* cached views by item index (physical address / itemSize) */
  private readonly views: Buffer[] = [];
  private readonly waiters: (() => void)[] = [];
  private growing: Promise<void> | null = null;
  inUse = 0;

  /*
   * => itemSize divides PAGE_SIZE; maxPages >= 1 (EINVAL otherwise)
   */
  constructor(kernel: Kernel, name: string, itemSize: number, maxPages: number) {
    if (!Number.isInteger(itemSize) || itemSize < 1 || PAGE_SIZE % itemSize !== 0) {
      throw new KernelError('EINVAL', `pool_init: ${name}: item size ${itemSize} must divide ${PAGE_SIZE}`);
    }
    if (!Number.isSafeInteger(maxPages) || maxPages < 1) {
      throw new KernelError('EINVAL', `pool_init: ${name}: bad page limit ${String(maxPages)}`);
    }
    this.kernel = kernel;
    this.name = name;
    this.itemSize = itemSize;
    this.perPage = PAGE_SIZE / itemSize;
    this.maxPages = maxPages;
  }

  get npages(): number {
    return this.pages.size;
  }

  /* getSync: an item's physical address, or -1 if none is free without growing (pool_get PR_NOWAIT) */
  getSync(): number {
    const addr = this.freeItems.pop();
    if (addr === undefined) return -1;
    this.pages.get(Math.floor(addr / PAGE_SIZE))!.free--;
    this.inUse++;
    return addr;
  }

  /*
   * get: an item, growing the pool by a page or waiting for a put() when at the limit (pool_get PR_WAITOK)
   * => throws ENOMEM when the VM system has no page to give
   */
  async get(): Promise<number> {
    for (;;) {
      const addr = this.getSync();
      if (addr >= 0) return addr;
      if (this.pages.size < this.maxPages) await this.grow();
      else await new Promise<void>((r) => this.waiters.push(r));
    }
  }

  private grow(): Promise<void> {
    if (this.growing === null) {
      this.growing = this.addPage().finally(() => {
        this.growing = null;
      });
    }
    return this.growing;
  }

  private async addPage(): Promise<void> {
    const pg = await uvmKmAllocPage(this.kernel.uvm);
    const kva = this.kernel.kva.alloc(1);
    this.kernel.kenter(kva, [pg], Prot.READ | Prot.WRITE);
    this.pages.set(pg.frame, { pg, kva, free: this.perPage });
    const base = pg.frame * PAGE_SIZE;
    for (let i = this.perPage - 1; i >= 0; i--) {
      const addr = base + i * this.itemSize;
      this.views[addr / this.itemSize] = pg.bytes().subarray(i * this.itemSize, (i + 1) * this.itemSize);
      this.freeItems.push(addr);
    }
  }

  /* put: give an item back (pool_put); wakes one waiter */
  put(addr: number): void {
    const page = this.pages.get(Math.floor(addr / PAGE_SIZE));
    if (page === undefined || addr % this.itemSize !== 0) {
      throw new KernelError('EINVAL', `pool_put: ${this.name}: ${addr} is not an item of this pool`);
    }
    page.free++;
    this.inUse--;
    this.freeItems.push(addr);
    this.waiters.shift()?.();
  }

  /* view: the item's bytes, a cached view of RAM */
  view(addr: number): Buffer {
    return this.views[addr / this.itemSize];
  }

  /* kvaOf: the kernel virtual address of an item */
  kvaOf(addr: number): number {
    const page = this.pages.get(Math.floor(addr / PAGE_SIZE))!;
    return page.kva + (addr % PAGE_SIZE);
  }

  /* drain: give pages with no item in use back to the VM system (pool_reclaim) */
  drain(): number {
    let freed = 0;
    for (const [frame, page] of this.pages) {
      if (page.free !== this.perPage) continue;
      const base = frame * PAGE_SIZE;
      for (let i = this.freeItems.length - 1; i >= 0; i--) {
        const a = this.freeItems[i];
        if (a >= base && a < base + PAGE_SIZE) this.freeItems.splice(i, 1);
      }
      this.kernel.kremove(page.kva, 1);
      this.kernel.kva.free(page.kva, 1);
      uvmKmFreePage(page.pg);
      this.pages.delete(frame);
      freed++;
    }
    return freed;
  }
}
