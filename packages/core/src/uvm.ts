/*
 * uvm.ts: the VM system's global state (NetBSD's `struct uvm` and `uvmexp`), one per Kernel.
 *
 * It owns RAM, the MMU, one vm_page per frame, the page queues, swap, the vnode cache, the shared
 * zero page's object, the counters, the sleep/wakeup channels for BUSY pages, and the I/O hook tests
 * use to inject races. Every other module gets at it through a page's, anon's or map's `uvm`.
 */
import { KernelError } from './errors.js';
import { PhysMem } from './physmem.js';
import { Mmu } from './pmap.js';
import { KernelObject, ZeroObject } from './uvm_aobj.js';
import type { UvmObject } from './uvm_object.js';
import { PageQueue, PQ_ACTIVE, PQ_INACTIVE, type VmPage, VmPage as VmPageClass } from './uvm_page.js';
import { PageFreeLists } from './uvm_pgfl.js';
import { Swap } from './uvm_swap.js';
import type { VnodeObject } from './uvm_vnode.js';

/** uvmexp: event counters in NetBSD's vocabulary */
export interface UvmExp {
  /** page faults taken */
  faults: number;
  /** copy-on-write faults */
  cowFaults: number;
  /** zero-filled pages */
  zeroFills: number;
  /** loans broken */
  loanBreaks: number;
  /** pages written out by the pagedaemon */
  pageouts: number;
  /** pages read back in */
  pageins: number;
  /** object pages loaned to the kernel (O->K) */
  loansObj: number;
  /** anon pages loaned (A->K, A->A) */
  loansAnon: number;
  /** O->A loans, and A->K loans of pages anons borrow from objects */
  loansOA: number;
  /** zero page loans */
  loansZero: number;
  /** loans ended */
  unloans: number;
  /** orphans freed by their last unloan */
  orphansFreed: number;
  /** pagedaemon passes */
  pdaemonRuns: number;
  /** sleeps for memory (uvm_wait) */
  pdaemonWaits: number;
  /** uvmPglistAlloc: runs of contiguous pages asked for, and how many of those found no run */
  pglistAllocs: number;
  /** runs asked of uvmPglistAlloc that found none */
  pglistFailed: number;
  /** pages moved into a process by uvmPageTransfer */
  pagesTransferred: number;
}

/** An I/O about to complete: tests may hook it to change the world while the caller sleeps. */
export interface IoEvent {
  /** what kind of I/O: a file page read or written, a swap-in or swap-out */
  kind: 'vnode-read' | 'vnode-write' | 'swapin' | 'swapout';
  /** the object whose page it is (file I/O) */
  object?: UvmObject;
  /** the page index in the object (file I/O) */
  offset?: number;
  /** the swap slot (swap I/O) */
  slot?: number;
  /** the physical frame read into or written from */
  frame: number;
}

/**
 * The kinds of trace event (kernel.onTrace): loans and their ends and breaks, orphans and adoptions, paging,
 * frees, page transfers.
 */
export type TraceKind =
  | 'loan'
  | 'unloan'
  | 'loanbreak'
  | 'orphan'
  | 'adopt'
  | 'pageout'
  | 'pagein'
  | 'free'
  | 'transfer';

/** One event of the trace (kernel.onTrace), delivered as it happens. */
export interface TraceEvent {
  /** what happened */
  kind: TraceKind;
  /** the physical frame it happened to */
  frame: number;
  /** when, by performance.now() */
  time: number;
  /** more about it, where there is more (for `transfer`: the user address) */
  detail?: string;
}

/** @internal the VM system's boot options (the Kernel's, checked) */
export interface UvmOptions {
  /** RAM in pages */
  physPages: number;
  /** swap in pages */
  swapPages: number;
  /** check loaned pages for changes (KernelOptions.diagnostic) */
  diagnostic?: boolean;
}

/**
 * Uvm: the VM system of one kernel (NetBSD's struct uvm with uvmexp): RAM, the MMU, every page, the queues
 * and free lists, swap. Users pass it (kernel.uvm) to the kernel memory allocators and look at it through
 * kernel.stats() and kernel.frameInfo(); its fields are the kernel's.
 *
 * @hideconstructor
 */
export class Uvm {
  /** physical memory */
  readonly ram: PhysMem;
  /** @internal the MMU */
  readonly mmu: Mmu;
  /** every page, by frame number */
  readonly pages: readonly VmPage[];
  /** @internal the free pages, a buddy system (uvm_pgfl.ts); free.length is uvmexp.free */
  readonly free: PageFreeLists;
  /** @internal */
  readonly active = new PageQueue(PQ_ACTIVE);
  /** @internal */
  readonly inactive = new PageQueue(PQ_INACTIVE);
  /** @internal */
  readonly swap: Swap;
  /** @internal the zero page's object (uvm_loanzero_object) */
  readonly zeroObject: ZeroObject;
  /** @internal owner of the kernel's own wired pages (mbuf clusters, pools): uvm_kernel_object */
  readonly kernelObject: KernelObject;
  /** @internal the vnode cache: one object per mapped file, by the file's identity ("device:inode") */
  readonly vnodes = new Map<string, VnodeObject>();
  /** @internal vnodes that lost their last reference and are still writing back, by identity (uvn_attach waits) */
  readonly dyingVnodes = new Map<string, Promise<void>>();
  /** @internal every live object */
  readonly objects = new Set<UvmObject>();
  /** @internal event counters (uvmexp): read them with kernel.stats() */
  readonly exp: UvmExp = {
    faults: 0,
    cowFaults: 0,
    zeroFills: 0,
    loanBreaks: 0,
    pageouts: 0,
    pageins: 0,
    loansObj: 0,
    loansAnon: 0,
    loansOA: 0,
    loansZero: 0,
    unloans: 0,
    orphansFreed: 0,
    pdaemonRuns: 0,
    pdaemonWaits: 0,
    pglistAllocs: 0,
    pglistFailed: 0,
    pagesTransferred: 0,
  };
  /** @internal wired pages (kernel.stats().wiredPages) */
  wiredPages = 0;
  /** @internal anons alive (kernel.stats().anons) */
  anons = 0;
  /** @internal DIAGNOSTIC: a hash of every loaned page's bytes, taken at its first loan (null when off) */
  readonly loanHash: Uint32Array | null;
  /** @internal amaps alive */
  amaps = 0;
  /** @internal pagedaemon targets (pages) */
  freeMin: number;
  /** @internal */
  freeTarget: number;
  /** @internal the pagedaemon, installed by the kernel (uvm_pdaemon.ts) */
  /** @internal */
  pdaemon: { wake(): void; wait(reason: string): Promise<void>; run(): Promise<number> } | null = null;
  /** @internal tests' race injection point: called (and awaited) in the middle of every pager/swap I/O */
  ioHook: ((ev: IoEvent) => Promise<void> | void) | null = null;
  /** @internal event trace listeners; empty means tracing costs one length check */
  readonly tracers: ((ev: TraceEvent) => void)[] = [];
  /** @internal kernel subsystems' caches (pools) the pagedaemon asks for idle pages back (kernel.addReclaimHook) */
  readonly reclaimHooks: (() => number)[] = [];
  /* sleepers on BUSY pages */
  private readonly sleepers = new Map<VmPage, (() => void)[]>();
  /* background work (write-back of dying vnodes) that kernel.sync() awaits */
  private readonly pending = new Set<Promise<void>>();

  /** @internal a Kernel makes its VM system at boot */
  constructor(opts: UvmOptions) {
    this.ram = new PhysMem(opts.physPages);
    this.swap = new Swap(opts.swapPages);
    this.mmu = new Mmu(this.ram);
    const pages = new Array<VmPage>(opts.physPages);
    for (let f = 0; f < opts.physPages; f++) pages[f] = new VmPageClass(this, f);
    this.pages = pages;
    this.free = new PageFreeLists(this.pages);
    this.loanHash = opts.diagnostic === true ? new Uint32Array(opts.physPages) : null;
    this.freeMin = Math.max(1, Math.floor(opts.physPages / 64));
    this.freeTarget = Math.max(2, Math.floor(opts.physPages / 32));
    this.zeroObject = new ZeroObject(this);
    this.kernelObject = new KernelObject(this, opts.physPages);
  }

  /** @internal sleep / wakeup: wait channels keyed by page */
  sleep(pg: VmPage): Promise<void> {
    return new Promise((resolve) => {
      const list = this.sleepers.get(pg);
      if (list) list.push(resolve);
      else this.sleepers.set(pg, [resolve]);
    });
  }

  /** @internal */
  wakeup(pg: VmPage): void {
    const list = this.sleepers.get(pg);
    if (!list) return;
    this.sleepers.delete(pg);
    for (const r of list) r();
  }

  /**
   * @internal
   * io: the middle of an I/O; runs the test hook, if any, then yields to the event loop as a real
   * device would -- always, hook or not: swap traffic that only ever yielded microtasks could thrash
   * under pressure (a page swapped out, faulted back in, swapped out again...) without ever letting
   * the file reads that would end the thrashing, or any timer, run
   */
  async io(ev: IoEvent): Promise<void> {
    if (this.ioHook !== null) await this.ioHook(ev);
    await new Promise<void>((resolve) => setImmediate(resolve));
  }

  /** @internal pdaemonWake: wake the pagedaemon (memory is short) */
  pdaemonWake(): void {
    this.pdaemon?.wake();
  }

  /**
   * wait: sleep until the pagedaemon has freed memory (uvm_wait).
   * => throws ENOMEM when nothing can be reclaimed
   */
  wait(reason: string): Promise<void> {
    if (this.pdaemon === null) return Promise.reject(new KernelError('ENOMEM', `${reason}: out of memory`));
    return this.pdaemon.wait(reason);
  }

  /**
   * @internal
   * trace: hand an event to every listener (kernel.onTrace), in the middle of the kernel's work
   * => a listener that throws is removed and its error reported as a process warning: a broken
   *    observer must not leave a loan or a fault half done
   */
  trace(kind: TraceKind, pg: VmPage, detail?: string): void {
    if (this.tracers.length === 0) return;
    const ev: TraceEvent = { kind, frame: pg.frame, time: performance.now(), detail };
    if (this.heldTraces !== null) this.heldTraces.push(ev);
    else callEach(this.tracers, 'trace listener', (t) => t(ev));
  }

  /* the events of an operation that holds them (withTracesHeld), or null */
  private heldTraces: TraceEvent[] | null = null;

  /**
   * @internal
   * withTracesHeld: run an operation that cannot stop half-way with its trace events held, then
   * deliver them in order: a listener -- which may look at the kernel or call into it -- never sees
   * the books mid-operation, nor changes what the operation has already checked
   * => returns what fn returns; the held events are delivered even if it throws
   */
  withTracesHeld<T>(fn: () => T): T {
    if (this.heldTraces !== null || this.tracers.length === 0) return fn();
    const held: TraceEvent[] = [];
    this.heldTraces = held;
    try {
      return fn();
    } finally {
      this.heldTraces = null;
      for (const ev of held) callEach(this.tracers, 'trace listener', (t) => t(ev));
    }
  }

  /**
   * @internal
   * reclaim: ask every reclaim hook for its idle pages back (the pagedaemon, when memory is short)
   * => returns the pages they freed; a hook that throws is removed with a process warning
   */
  reclaim(): number {
    let freed = 0;
    callEach(this.reclaimHooks, 'reclaim hook', (hook) => {
      const n = hook();
      if (Number.isSafeInteger(n) && n > 0) freed += n;
    });
    return freed;
  }

  /** @internal background: track a promise that kernel.sync() must wait for (errors are kept, not thrown) */
  background(p: Promise<void>): void {
    const tracked = p.catch((err) => {
      this.backgroundErrors.push(err);
    });
    this.pending.add(tracked);
    void tracked.finally(() => this.pending.delete(tracked));
  }

  /** @internal errors of background work (write-back), kept for kernel.sync() to report */
  readonly backgroundErrors: unknown[] = [];

  /** @internal drain: wait until no background work is left */
  async drain(): Promise<void> {
    while (this.pending.size > 0) await Promise.all([...this.pending]);
  }
}

/*
 * callEach: call(hook) for every hook in list (a copy of it: a hook may unsubscribe meanwhile)
 * => a hook whose call throws is taken out of the list and reported as a process warning
 */
function callEach<T>(list: T[], what: string, call: (hook: T) => void): void {
  for (const hook of [...list]) {
    try {
      call(hook);
    } catch (err) {
      const i = list.indexOf(hook);
      if (i >= 0) list.splice(i, 1);
      const why = err instanceof Error ? err.message : String(err);
      process.emitWarning(`a kernel ${what} threw (${why}) and was removed`, 'LoanoutHookWarning');
    }
  }
}
