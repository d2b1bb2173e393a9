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

/* uvmexp: event counters in NetBSD's vocabulary */
export interface UvmExp {
  faults: number;
  cowFaults: number;
  zeroFills: number;
  loanBreaks: number;
  pageouts: number;
  pageins: number;
  loansObj: number;
  loansAnon: number;
  loansOA: number;
  loansZero: number;
  unloans: number;
  orphansFreed: number;
  pdaemonRuns: number;
  pdaemonWaits: number;
  /* uvmPglistAlloc: runs of contiguous pages asked for, and how many of those found no run */
  pglistAllocs: number;
  pglistFailed: number;
  /* pages moved into a process by uvmPageTransfer */
  pagesTransferred: number;
}

/* An I/O about to complete: tests may hook it to change the world while the caller sleeps. */
export interface IoEvent {
  kind: 'vnode-read' | 'vnode-write' | 'swapin' | 'swapout';
  object?: UvmObject;
  offset?: number;
  slot?: number;
  frame: number;
}

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

export interface TraceEvent {
  kind: TraceKind;
  frame: number;
  time: number;
  detail?: string;
}

export interface UvmOptions {
  physPages: number;
  swapPages: number;
  diagnostic?: boolean;
}

export class Uvm {
  readonly ram: PhysMem;
  readonly mmu: Mmu;
  readonly pages: VmPage[];
  /* the free pages, a buddy system (uvm_pgfl.ts); free.length is uvmexp.free */
  readonly free: PageFreeLists;
  readonly active = new PageQueue(PQ_ACTIVE);
  readonly inactive = new PageQueue(PQ_INACTIVE);
  readonly swap: Swap;
  readonly zeroObject: ZeroObject;
  /* owner of the kernel's own wired pages (mbuf clusters, pools): uvm_kernel_object */
  readonly kernelObject: KernelObject;
  /* the vnode cache: one object per mapped file, by the file's identity ("device:inode") */
  readonly vnodes = new Map<string, VnodeObject>();
  /* vnodes that lost their last reference and are still writing back, by identity (uvn_attach waits) */
  readonly dyingVnodes = new Map<string, Promise<void>>();
  readonly objects = new Set<UvmObject>();
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
  wiredPages = 0;
  anons = 0;
  /* DIAGNOSTIC: a hash of every loaned page's bytes, taken at its first loan (null when off) */
  readonly loanHash: Uint32Array | null;
  amaps = 0;
  /* pagedaemon targets (pages) */
  freeMin: number;
  freeTarget: number;
  /* the pagedaemon, installed by the kernel (uvm_pdaemon.ts) */
  pdaemon: { wake(): void; wait(reason: string): Promise<void>; run(): Promise<number> } | null = null;
  /* tests' race injection point: called (and awaited) in the middle of every pager/swap I/O */
  ioHook: ((ev: IoEvent) => Promise<void> | void) | null = null;
  /* event trace listeners; empty means tracing costs one length check */
  readonly tracers: ((ev: TraceEvent) => void)[] = [];
  /* kernel subsystems' caches (pools) the pagedaemon asks for idle pages back (kernel.addReclaimHook) */
  readonly reclaimHooks: (() => number)[] = [];
  /* sleepers on BUSY pages */
  private readonly sleepers = new Map<VmPage, (() => void)[]>();
  /* background work (write-back of dying vnodes) that kernel.sync() awaits */
  private readonly pending = new Set<Promise<void>>();

  constructor(opts: UvmOptions) {
    this.ram = new PhysMem(opts.physPages);
    this.swap = new Swap(opts.swapPages);
    this.mmu = new Mmu(this.ram);
    this.pages = new Array<VmPage>(opts.physPages);
    for (let f = 0; f < opts.physPages; f++) this.pages[f] = new VmPageClass(this, f);
    this.free = new PageFreeLists(this.pages);
    this.loanHash = opts.diagnostic === true ? new Uint32Array(opts.physPages) : null;
    this.freeMin = Math.max(1, Math.floor(opts.physPages / 64));
    this.freeTarget = Math.max(2, Math.floor(opts.physPages / 32));
    this.zeroObject = new ZeroObject(this);
    this.kernelObject = new KernelObject(this, opts.physPages);
  }

  /* sleep / wakeup: wait channels keyed by page */
  sleep(pg: VmPage): Promise<void> {
    return new Promise((resolve) => {
      const list = this.sleepers.get(pg);
      if (list) list.push(resolve);
      else this.sleepers.set(pg, [resolve]);
    });
  }

  wakeup(pg: VmPage): void {
    const list = this.sleepers.get(pg);
    if (!list) return;
    this.sleepers.delete(pg);
    for (const r of list) r();
  }

  /*
   * io: the middle of an I/O; runs the test hook, if any, then yields to the event loop as a real
   * device would -- always, hook or not: swap traffic that only ever yielded microtasks could thrash
   * under pressure (a page swapped out, faulted back in, swapped out again...) without ever letting
   * the file reads that would end the thrashing, or any timer, run
   */
  async io(ev: IoEvent): Promise<void> {
    if (this.ioHook !== null) await this.ioHook(ev);
    await new Promise<void>((resolve) => setImmediate(resolve));
  }

  pdaemonWake(): void {
    this.pdaemon?.wake();
  }

  /*
   * wait: sleep until the pagedaemon has freed memory (uvm_wait).
   * => throws ENOMEM when nothing can be reclaimed
   */
  wait(reason: string): Promise<void> {
    if (this.pdaemon === null) return Promise.reject(new KernelError('ENOMEM', `${reason}: out of memory`));
    return this.pdaemon.wait(reason);
  }

  /*
   * trace: hand an event to every listener (kernel.onTrace), in the middle of the kernel's work
   * => a listener that throws is removed and its error reported as a process warning: a broken
   *    observer must not leave a loan or a fault half done
   */
  trace(kind: TraceKind, pg: VmPage, detail?: string): void {
    if (this.tracers.length === 0) return;
    const ev: TraceEvent = { kind, frame: pg.frame, time: performance.now(), detail };
    callEach(this.tracers, 'trace listener', (t) => t(ev));
  }

  /*
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

  /* background: track a promise that kernel.sync() must wait for (errors are kept, not thrown) */
  background(p: Promise<void>): void {
    const tracked = p.catch((err) => {
      this.backgroundErrors.push(err);
    });
    this.pending.add(tracked);
    void tracked.finally(() => this.pending.delete(tracked));
  }

  readonly backgroundErrors: unknown[] = [];

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
