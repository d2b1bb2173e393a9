/*
 * subr_pool.ts: fixed-size item pools carved out of wired kernel pages (NetBSD's pool(9)).
 *
 * mbuf clusters live in RAM like everything else: a pool takes wired pages of kernel memory from the
 * VM system (uvmKmAllocPage), maps each read-write into kernel space, and cuts it into items (two 2 KiB
 * clusters per page). An item is named by its physical address (its byte offset in RAM); its Buffer
 * view and its kernel va are computed once, when its page joins the pool, so getting and putting items
 * allocates nothing.
 *
 * The page limit caps the items out at once (the pool's capacity). A caller that needs several items
 * for one job (a chain of clusters) takes them with getMany(), all or none: it waits in line, holding
 * nothing, until its whole count fits under the cap -- so two takers can never each hold half the
 * pool while waiting for the other (hold-and-wait), and a request larger than the pool is refused at
 * once rather than left waiting forever. Items promised to a waiter that has its turn are counted as
 * taken (`committed`), so nobody else gets them first.
 */
import {
  type Kernel,
  KernelError,
  KernelPanic,
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
  /* 1 for an item handed out, by item index (catches a double put) */
  private readonly out: Uint8Array;
  /* takers waiting for their count to fit under the cap, first come first served */
  private readonly waiters: { n: number; resolve: () => void }[] = [];
  private growing: Promise<void> | null = null;
  inUse = 0;
  /* items handed out plus items promised to takers still collecting them; <= capacity */
  private committed = 0;

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
    this.out = new Uint8Array(kernel.uvm.pages.length * this.perPage);
  }

  get npages(): number {
    return this.pages.size;
  }

  /* capacity: the most items that may be out at once (maxPages pages' worth) */
  get capacity(): number {
    return this.maxPages * this.perPage;
  }

  /*
   * getSync: an item's physical address, or -1 if none is free without growing or waiting, or if
   * others wait ahead (pool_get PR_NOWAIT)
   */
  getSync(): number {
    if (this.waiters.length > 0 || this.committed >= this.capacity || this.freeItems.length === 0) return -1;
    this.committed++;
    return this.take();
  }

  /*
   * getManySync: n items at once if they are free now with nobody waiting ahead (no growing, no
   * waiting), else null and nothing taken -- getMany's fast path
   */
  getManySync(n: number): number[] | null {
    if (this.waiters.length > 0 || this.committed + n > this.capacity || this.freeItems.length < n)
      return null;
    this.committed += n;
    const addrs: number[] = new Array(n);
    for (let i = 0; i < n; i++) addrs[i] = this.take();
    return addrs;
  }

  /*
   * get: an item, growing the pool by a page or waiting in line for a put() at the limit
   * (pool_get PR_WAITOK)
   * => throws ENOMEM when the VM system has no page to give
   */
  async get(): Promise<number> {
    const addr = this.getSync();
    if (addr >= 0) return addr;
    return (await this.getMany(1))[0];
  }

  /*
   * getMany: n items, all or none, as one request: waits in line, holding nothing, until n fit under
   * the cap, then takes them, growing the pool as needed.
   * => throws EINVAL if n is not an integer in 1..capacity (more could never be had at once), ENOMEM
   *    when the VM system has no page to give, EINTR if `signal` aborts the wait; then nothing is kept
   */
  async getMany(n: number, signal?: AbortSignal): Promise<number[]> {
    if (!Number.isSafeInteger(n) || n < 1 || n > this.capacity) {
      throw new KernelError(
        'EINVAL',
        `pool_get: ${this.name}: ${String(n)} items (capacity ${this.capacity})`,
      );
    }
    if (this.waiters.length === 0 && this.committed + n <= this.capacity) this.committed += n;
    else await this.waitTurn(n, signal);
    const addrs: number[] = [];
    try {
      while (addrs.length < n) {
        if (this.freeItems.length > 0) addrs.push(this.take());
        else await this.grow();
      }
    } catch (err) {
      this.committed -= n - addrs.length;
      for (const a of addrs) this.put(a);
      this.pump();
      throw err;
    }
    return addrs;
  }
  /* waitTurn: wait in line until n items are committed to us; EINTR if `signal` aborts first */
  private waitTurn(n: number, signal?: AbortSignal): Promise<void> {
    if (signal?.aborted) return Promise.reject(new KernelError('EINTR', `pool_get: ${this.name}: aborted`));
    return new Promise<void>((resolve, reject) => {
      const onAbort = () => {
        const i = this.waiters.indexOf(w);
        if (i < 0) return;
        this.waiters.splice(i, 1);
        reject(new KernelError('EINTR', `pool_get: ${this.name}: aborted while waiting for items`));
        this.pump();
      };
      const w = {
        n,
        resolve: () => {
          signal?.removeEventListener('abort', onAbort);
          resolve();
        },
      };
      this.waiters.push(w);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  /* take: pop a free item for a taker whose count is already committed */
  private take(): number {
    const addr = this.freeItems.pop()!;
    this.pages.get(Math.floor(addr / PAGE_SIZE))!.free--;
    this.out[addr / this.itemSize] = 1;
    this.inUse++;
    return addr;
  }

  /* pump: let waiters in, in order, while their counts fit */
  private pump(): void {
    while (this.waiters.length > 0 && this.committed + this.waiters[0].n <= this.capacity) {
      const w = this.waiters.shift()!;
      this.committed += w.n;
      w.resolve();
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
    let kva: number;
    try {
      kva = this.kernel.kva.alloc(1);
    } catch (err) {
      uvmKmFreePage(pg);
      throw err;
    }
    this.kernel.kenter(kva, [pg], Prot.READ | Prot.WRITE);
    this.pages.set(pg.frame, { pg, kva, free: this.perPage });
    const base = pg.frame * PAGE_SIZE;
    for (let i = this.perPage - 1; i >= 0; i--) {
      const addr = base + i * this.itemSize;
      this.views[addr / this.itemSize] = pg.bytes().subarray(i * this.itemSize, (i + 1) * this.itemSize);
      this.freeItems.push(addr);
    }
  }

  /*
   * put: give an item back (pool_put); lets waiters in
   * => EINVAL if addr is not an item of this pool; panics if the item is not out (double put)
   */
  put(addr: number): void {
    const page = Number.isSafeInteger(addr) ? this.pages.get(Math.floor(addr / PAGE_SIZE)) : undefined;
    if (page === undefined || addr % this.itemSize !== 0) {
      throw new KernelError('EINVAL', `pool_put: ${this.name}: ${addr} is not an item of this pool`);
    }
    if (this.out[addr / this.itemSize] !== 1)
      throw new KernelPanic(`pool_put: ${this.name}: item ${addr} put twice`);
    this.out[addr / this.itemSize] = 0;
    page.free++;
    this.inUse--;
    this.committed--;
    this.freeItems.push(addr);
    this.pump();
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
