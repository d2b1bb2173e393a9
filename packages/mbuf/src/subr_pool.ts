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
 *
 * The pool keeps the pages it grew by, so the next chain needn't allocate -- but never at the cost of
 * user memory. The pagedaemon asks for idle pages back when memory runs short (reclaim(), a kernel
 * reclaim hook: NetBSD's pagedaemon calling pool_drain), and a request that can't grow for want of a
 * page (ENOMEM) gives back every page with no item out before it fails. While a taker is collecting
 * items (growing the pool), reclaim gives nothing: the pages it just grew by are idle only until it
 * takes their items.
 *
 * A taker may *overdraft*: take its items at once, past the cap and ahead of the line. The socket
 * layer does so for the one chunk a socket with nothing in flight is always allowed (a guaranteed
 * minimum, like Linux's tcp_wmem[0]), so that sockets whose peers never read, holding the whole pool,
 * can't starve one whose peer does; overdrafts are bounded by the number of sockets.
 *
 * Anyone may call these with any number, so an address that is not one of our items is EINVAL; an item
 * of ours that is not out, handed to put/view/kvaOf, can only come from a holder that already gave it
 * back -- a kernel bug, so a KernelPanic, like freeing an mbuf twice.
 */
import {
  checkKernel,
  type Kernel,
  KernelError,
  KernelPanic,
  PAGE_SIZE,
  Prot,
  uvmKmAllocPage,
  uvmKmFreePage,
  type VmPage,
} from '@loanout/core';
import { checkSignal, WaitLine } from './kern_condvar.js';

/* one page of the pool: its vm_page, its kernel va, and how many of its items are free */
interface PoolPage {
  pg: VmPage;
  kva: number;
  free: number;
}

/** Pool: fixed-size items in wired kernel pages (NetBSD's pool(9)): the mbuf clusters. */
export class Pool {
  /** the pool's name, in messages */
  readonly name: string;
  /** bytes per item */
  readonly itemSize: number;
  /** items per page */
  readonly perPage: number;
  /** the most pages it may hold (overdrafts aside) */
  readonly maxPages: number;
  private readonly kernel: Kernel;
  /* free items by physical address */
  private readonly freeItems: number[] = [];
  /* the pool's pages by frame */
  private readonly pages = new Map<number, PoolPage>();
  /* cached views by item index (physical address / itemSize) */
  private readonly views: (Buffer | undefined)[] = [];
  /* 1 for an item handed out, by item index (catches a double put) */
  private readonly out: Uint8Array;
  /* takers waiting for their count to fit under the cap, first come first served */
  private readonly line = new WaitLine(
    (n) => this.committed + n <= this.capacity,
    (n) => {
      this.committed += n;
    },
  );
  private growing: Promise<void> | null = null;
  /** items handed out */
  inUse = 0;
  /* items handed out plus items promised to takers still collecting them; <= capacity but for overdrafts */
  private committed = 0;
  /** called after every put (the mbuf system's release broadcast), or null */
  onRelease: (() => void) | null = null;
  /* pages with no item out (what drain() would give back) */
  private idle = 0;

  /**
   * => kernel a Kernel, name a string, itemSize divides PAGE_SIZE, maxPages >= 1 (EINVAL otherwise)
   */
  constructor(kernel: Kernel, name: string, itemSize: number, maxPages: number) {
    checkKernel('pool_init', kernel);
    if (typeof name !== 'string') throw new KernelError('EINVAL', 'pool_init: the name must be a string');
    if (!Number.isInteger(itemSize) || itemSize < 1 || PAGE_SIZE % itemSize !== 0) {
      throw new KernelError(
        'EINVAL',
        `pool_init: ${name}: item size ${String(itemSize)} must divide ${PAGE_SIZE}`,
      );
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

  /** pages it holds */
  get npages(): number {
    return this.pages.size;
  }

  /** capacity: the most items that may be out at once (maxPages pages' worth) */
  get capacity(): number {
    return this.maxPages * this.perPage;
  }

  /**
   * getSync: an item's physical address, or -1 if none is free without growing or waiting, or if
   * others wait ahead (pool_get PR_NOWAIT)
   */
  getSync(): number {
    if (this.line.length > 0 || this.committed >= this.capacity || this.freeItems.length === 0) return -1;
    this.committed++;
    return this.take();
  }

  /**
   * getManySync: n items at once if they are free now with nobody waiting ahead (no growing, no
   * waiting), else null and nothing taken -- getMany's fast path
   * => overdraft: past the cap and ahead of the line, if n items are free now
   * => EINVAL if n is not an integer in 1..capacity
   */
  getManySync(n: number, overdraft = false): number[] | null {
    this.checkCount(n);
    if ((!overdraft && !this.fits(n)) || this.freeItems.length < n) return null;
    this.committed += n;
    const addrs: number[] = new Array(n);
    for (let i = 0; i < n; i++) addrs[i] = this.take();
    return addrs;
  }

  /**
   * get: an item, growing the pool by a page or waiting in line for a put() at the limit
   * (pool_get PR_WAITOK)
   * => throws ENOMEM when the VM system has no page to give (then the pool's idle pages go back)
   */
  async get(): Promise<number> {
    const addr = this.getSync();
    if (addr >= 0) return addr;
    return (await this.getMany(1))[0];
  }

  /**
   * getMany: n items, all or none, as one request: waits in line, holding nothing, until n fit under
   * the cap, then takes them, growing the pool as needed.
   * => overdraft: no wait and no cap (see the essay above); the pool still grows page by page
   * => throws EINVAL if n is not an integer in 1..capacity (more could never be had at once) or signal
   *    is neither undefined nor an AbortSignal; EINTR if signal has already aborted (at once) or aborts
   *    the wait; ENOMEM when the VM system has no page to give -- then the pool also gives back every
   *    page with no item out (pool_reclaim), so a failed request leaves no memory tied up; after any
   *    error nothing is kept and nothing is left waiting
   */
  async getMany(n: number, signal?: AbortSignal, overdraft = false): Promise<number[]> {
    this.checkCount(n);
    checkSignal(`pool_get: ${this.name}`, signal);
    if (overdraft || this.fits(n)) this.committed += n;
    else await this.line.sleep(`pool_get: ${this.name}`, 'items', n, signal);
    const addrs: number[] = [];
    try {
      while (addrs.length < n) {
        if (this.freeItems.length > 0) addrs.push(this.take());
        else await this.grow();
      }
    } catch (err) {
      this.committed -= n - addrs.length;
      for (const a of addrs) this.put(a);
      this.drain();
      this.line.pump();
      throw err;
    }
    return addrs;
  }

  /** fits: would n more items be had now without waiting (nobody in line, under the cap)? */
  fits(n: number): boolean {
    return this.line.length === 0 && this.committed + n <= this.capacity;
  }

  private checkCount(n: number): void {
    if (!Number.isSafeInteger(n) || n < 1 || n > this.capacity) {
      throw new KernelError(
        'EINVAL',
        `pool_get: ${this.name}: ${String(n)} items (capacity ${this.capacity})`,
      );
    }
  }

  /* take: pop a free item for a taker whose count is already committed */
  private take(): number {
    const addr = this.freeItems.pop()!;
    const page = this.pages.get(Math.floor(addr / PAGE_SIZE))!;
    if (page.free-- === this.perPage) this.idle--;
    this.out[addr / this.itemSize] = 1;
    this.inUse++;
    return addr;
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
    this.idle++;
    const base = pg.frame * PAGE_SIZE;
    for (let i = this.perPage - 1; i >= 0; i--) {
      const addr = base + i * this.itemSize;
      this.views[addr / this.itemSize] = pg.bytes().subarray(i * this.itemSize, (i + 1) * this.itemSize);
      this.freeItems.push(addr);
    }
  }

  /**
   * put: give an item back (pool_put); lets waiters in. The page stays in the pool, idle or not, until
   * the pagedaemon asks for it (reclaim): a put costs the same whatever memory is like
   * => EINVAL if addr is not an item of this pool; panics if the item is not out (double put)
   */
  put(addr: number): void {
    const page = this.itemPage('pool_put', addr);
    if (this.out[addr / this.itemSize] !== 1)
      throw new KernelPanic(`pool_put: ${this.name}: item ${addr} put twice`);
    this.out[addr / this.itemSize] = 0;
    if (++page.free === this.perPage) this.idle++;
    this.inUse--;
    this.committed--;
    this.freeItems.push(addr);
    this.line.pump();
    this.onRelease?.();
  }

  /**
   * view: the bytes of an item that is out, a cached view of RAM
   * => EINVAL if addr is not an item of this pool; panics if the item is not out (a use after put)
   */
  view(addr: number): Buffer {
    this.outItemPage('pool_view', addr);
    return this.views[addr / this.itemSize]!;
  }

  /**
   * kvaOf: the kernel virtual address of an item that is out
   * => EINVAL if addr is not an item of this pool; panics if the item is not out (a use after put)
   */
  kvaOf(addr: number): number {
    return this.outItemPage('pool_kva', addr).kva + (addr % PAGE_SIZE);
  }

  /* itemPage: the page of one of our items; EINVAL for anything else (any number may come in) */
  private itemPage(fn: string, addr: number): PoolPage {
    const page =
      Number.isSafeInteger(addr) && addr % this.itemSize === 0
        ? this.pages.get(Math.floor(addr / PAGE_SIZE))
        : undefined;
    if (page === undefined) {
      throw new KernelError('EINVAL', `${fn}: ${this.name}: ${String(addr)} is not an item of this pool`);
    }
    return page;
  }

  /* outItemPage: itemPage, for an item handed out: only its holder has it, so a free one is a bug */
  private outItemPage(fn: string, addr: number): PoolPage {
    const page = this.itemPage(fn, addr);
    if (this.out[addr / this.itemSize] !== 1) {
      throw new KernelPanic(`${fn}: ${this.name}: item ${addr} is not out (used after put)`);
    }
    return page;
  }

  /**
   * reclaim: the pagedaemon's request for pages back (registered with kernel.addReclaimHook by the
   * mbuf system): drain, unless a taker is collecting items now (the pages it just grew by are idle
   * only until it takes their items)
   * => returns the number of pages given back
   */
  reclaim(): number {
    return this.committed === this.inUse ? this.drain() : 0;
  }

  /**
   * drain: give every page with no item out back to the VM system (pool_reclaim)
   * => returns the number of pages given back
   */
  drain(): number {
    if (this.idle === 0) return 0;
    let freed = 0;
    for (const [frame, page] of this.pages) {
      if (page.free !== this.perPage) continue;
      this.releasePage(frame, page);
      freed++;
    }
    if (freed > 0) this.forgetFreeItemsOfReleasedPages();
    return freed;
  }

  /* releasePage: unmap and free one idle page; its items are dropped from freeItems afterwards */
  private releasePage(frame: number, page: PoolPage): void {
    const first = (frame * PAGE_SIZE) / this.itemSize;
    this.views.fill(undefined, first, first + this.perPage);
    this.kernel.kremove(page.kva, 1);
    this.kernel.kva.free(page.kva, 1);
    uvmKmFreePage(page.pg);
    this.pages.delete(frame);
    this.idle--;
  }

  private forgetFreeItemsOfReleasedPages(): void {
    let kept = 0;
    for (const a of this.freeItems) {
      if (this.pages.has(Math.floor(a / PAGE_SIZE))) this.freeItems[kept++] = a;
    }
    this.freeItems.length = kept;
  }
}
