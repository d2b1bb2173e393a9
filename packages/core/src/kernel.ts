/*
 * kernel.ts: the Kernel -- boots RAM, the MMU and UVM, starts the pagedaemon, creates processes,
 * and reports on itself (stats, checkInvariants, the event trace).
 */
import { KernelError, panic } from './errors.js';
import { checkAddress, checkLength, checkProt, hex, option, PAGE_SHIFT, PAGE_SIZE, Prot } from './param.js';
import { MAX_PHYS_PAGES } from './physmem.js';
import { Proc, type ProcHost } from './proc.js';
import { type IoEvent, type TraceEvent, Uvm } from './uvm.js';
import { checkInvariants } from './uvm_invariants.js';
import { KERNEL_VA_PAGES, KernelVa, VM_MIN_KERNEL_ADDRESS } from './uvm_km.js';
import { checkPageArg, PG_BUSY, PQ_ACTIVE, PQ_INACTIVE, type VmPage } from './uvm_page.js';
import { type FrameInfo, frameInfo, frameStates } from './uvm_pageinfo.js';
import { PageDaemon } from './uvm_pdaemon.js';
import { snapshotList } from './uvm_pglist.js';

/** What a Kernel boots with (every option may be left out). */
export interface KernelOptions {
  /** physical memory in pages (default 4096 = 16 MiB) */
  physPages?: number;
  /** swap in pages (default 8192 = 32 MiB; 0 = no swap) */
  swapPages?: number;
  /**
   * NetBSD's DIAGNOSTIC: check that no page changes while it is on loan -- a hash of each page taken
   * at its first loan, checked whenever the kernel gives a loan back; a change panics, naming the
   * frame and its owner (a kernel write through a raw view of a loaned mbuf, say). Costs a pass over
   * the page per loan and unloan. Default: on when the environment has LOANOUT_DIAGNOSTIC=1 (the
   * test suite sets it), else off.
   */
  diagnostic?: boolean;
}

/**
 * kernel.stats(): what the machine holds now (pages by state) and what it has done so far (counters since
 * boot).
 */
export interface KernelStats {
  /** physical memory, in pages */
  physPages: number;
  /** pages on the free lists */
  freePages: number;
  /** pages on the active queue, neither wired nor busy */
  activePages: number;
  /** pages on the inactive queue (the pagedaemon's candidates), neither wired nor busy */
  inactivePages: number;
  /** wired pages: on loan to the kernel, or kernel memory */
  wiredPages: number;
  /** pages on loan (loanCount > 0), to the kernel or to anons */
  loanedPages: number;
  /** pages on loan that no owner holds any more: the last unloan frees them */
  orphanPages: number;
  /** pages BUSY (being read in, written out or set up) */
  busyPages: number;
  /** page faults taken */
  faults: number;
  /** copy-on-write faults: a write to a page shared after fork or an A->A loan got its own copy */
  cowFaults: number;
  /** pages of memory never touched, filled with zeros on first use */
  zeroFills: number;
  /**
   * loans broken: a write to a loaned page (the writer gets a copy) or the pagedaemon taking an O->A page
   * from its object
   */
  loanBreaks: number;
  /** pages written to swap or to their file by the pagedaemon */
  pageouts: number;
  /** pages read back from swap or a file */
  pageins: number;
  /** pages loaned, all kinds: loansObj + loansAnon + loansOA + loansZero */
  loans: number;
  /** pages of objects (files, shared memory) loaned to the kernel (O->K) */
  loansObj: number;
  /** anons' pages loaned to the kernel (A->K) or to anons (A->A) */
  loansAnon: number;
  /** O->A loans, and A->K loans of pages an anon borrows from its object (NetBSD's loan_oa) */
  loansOA: number;
  /** loans of memory never touched: the shared zero page */
  loansZero: number;
  /** pages whose loan ended (uvmUnloanPages, uvmUnloanAnons) */
  unloans: number;
  /** orphans freed by their last unloan */
  orphansFreed: number;
  /** uvmPglistAlloc: runs of contiguous pages asked for, and how many of those found none free */
  pglistAllocs: number;
  /** runs asked of uvmPglistAlloc that found none free (null) */
  pglistFailed: number;
  /** pages moved into processes by uvmPageTransfer */
  pagesTransferred: number;
  /** swap, in pages */
  swapPages: number;
  /** swap slots in use */
  swapUsed: number;
  /** anons alive */
  anons: number;
  /** pages of kernel address space allocated (kernel.kva) */
  kernelVaPages: number;
  /** processes that have not exited */
  processes: number;
}

/**
 * Kernel: one machine -- RAM, the MMU, UVM and its pagedaemon, swap -- and its processes. `new Kernel(opts)`
 * boots it; `shutdown()` ends it.
 */
export class Kernel implements ProcHost {
  /**
   * the VM system: pass it to uvmPglistAlloc, uvmKmAllocPage, uvmKmAllocContig; look with stats() and
   * frameInfo()
   */
  readonly uvm: Uvm;
  /** @internal the pagedaemon (uvm_pdaemon.ts) */
  readonly pagedaemon: PageDaemon;
  /** the kernel's address space: allocate a range here, then kenter pages at it */
  readonly kva: KernelVa;
  private readonly procs = new Map<number, Proc>();
  private nextPid = 1;
  /* set by the first shutdown(): the shutdown under way or done */
  private down: Promise<void> | null = null;

  /**
   * => physPages: integer 1..2^18 (EINVAL otherwise); swapPages: integer >= 0 (EINVAL otherwise)
   */
  constructor(opts: KernelOptions = {}) {
    if (opts === null || typeof opts !== 'object')
      throw new KernelError('EINVAL', 'Kernel: options must be an object');
    const physPages = option(opts.physPages, 4096);
    if (!Number.isSafeInteger(physPages) || physPages < 1 || physPages > MAX_PHYS_PAGES) {
      throw new KernelError('EINVAL', `Kernel: bad physPages ${String(physPages)} (1..${MAX_PHYS_PAGES})`);
    }
    const swapPages = option(opts.swapPages, 8192);
    if (!Number.isSafeInteger(swapPages) || swapPages < 0) {
      throw new KernelError('EINVAL', `Kernel: bad swapPages ${String(swapPages)}`);
    }
    const diagnostic = option(opts.diagnostic, process.env.LOANOUT_DIAGNOSTIC === '1');
    if (typeof diagnostic !== 'boolean') {
      throw new KernelError('EINVAL', `Kernel: diagnostic must be a boolean, not ${String(diagnostic)}`);
    }
    this.uvm = new Uvm({ physPages, swapPages, diagnostic });
    this.pagedaemon = new PageDaemon(this.uvm);
    this.uvm.pdaemon = this.pagedaemon;
    this.kva = new KernelVa(this.uvm.mmu.kernelPmap);
  }

  /**
   * createProcess: a new process with an empty address space
   * => throws ESHUTDOWN once the kernel is shut down
   */
  createProcess(): Proc {
    this.checkUp('createProcess');
    const p = new Proc(this, this.nextPid++);
    this.procs.set(p.pid, p);
    return p;
  }

  /** @internal a new process for a fork (ProcHost): use proc.fork() */
  createChild(_parent: Proc): Proc {
    return this.createProcess();
  }

  /** @internal procExited: Proc.exit's report to its kernel (not for users: call proc.exit()) */
  procExited(p: Proc): void {
    if (!(p instanceof Proc) || !p.exited) {
      throw new KernelError('EINVAL', 'procExited: not an exited process (call proc.exit())');
    }
    this.procs.delete(p.pid);
  }

  /** processes: the processes that have not exited, as a new array (so exiting them in a loop is safe) */
  get processes(): Proc[] {
    return [...this.procs.values()];
  }

  /**
   * kenter / kremove: map pages read-only or read-write into kernel space at a va from kva.alloc
   * => va a page-aligned kernel address with room for the pages, prot valid, pages vm_pages of this
   *    kernel, npages >= 0 (EINVAL)
   * => a loaned page (or the zero page) mapped writable is a panic: loans are read-only
   */
  kenter(va: number, pageList: readonly VmPage[], prot: number = Prot.READ): void {
    checkProt('kenter', prot);
    if (!Array.isArray(pageList)) throw new KernelError('EINVAL', 'kenter: pages must be an array');
    const pages = snapshotList('kenter', pageList, 'vm_page') as VmPage[];
    checkKernelRange('kenter', va, pages.length);
    for (const pg of pages) {
      checkPageArg('kenter', pg);
      if (pg.uvm !== this.uvm)
        throw new KernelError('EINVAL', `kenter: page ${pg.frame} is another kernel's`);
      if (prot & Prot.WRITE && (pg.loanCount > 0 || pg.uobject === this.uvm.zeroObject)) {
        panic(`pmap_kenter_pa: loaned page ${pg.frame} mapped writable`);
      }
    }
    const pmap = this.uvm.mmu.kernelPmap;
    const vpn = va / PAGE_SIZE;
    for (let i = 0; i < pages.length; i++) pmap.kenter(vpn + i, pages[i].frame, prot);
  }

  /**
   * kremove: unmap npages kernel pages at va (mapped by kenter)
   * => va a kernel address, npages >= 0 (EINVAL)
   */
  kremove(va: number, npages: number): void {
    checkLength('kremove', npages, 0);
    checkKernelRange('kremove', va, npages);
    this.uvm.mmu.kernelPmap.kremove(va / PAGE_SIZE, npages);
  }

  /**
   * kread / kwrite: kernel accesses through the kernel pmap; faults are fatal (KernelPanic)
   * => bad arguments (address, length, not bytes) are EINVAL
   */
  kread(va: number, n: number): Buffer {
    checkAddress('kread', va, false);
    checkLength('kread', n, 0);
    const out = Buffer.allocUnsafe(n);
    for (let done = 0; done < n; ) {
      const a = va + done;
      const off = a % PAGE_SIZE;
      const len = Math.min(n - done, PAGE_SIZE - off);
      const at = (this.kva.access(a, false) << PAGE_SHIFT) + off;
      out.set(this.uvm.ram.bytes.subarray(at, at + len), done);
      done += len;
    }
    return out;
  }

  /**
   * kwrite: write bytes at kernel address va through the kernel pmap
   * => bad arguments are EINVAL; a fault (a read-only or unmapped page) is a KernelPanic
   */
  kwrite(va: number, bytes: Uint8Array): void {
    checkAddress('kwrite', va, false);
    if (!(bytes instanceof Uint8Array)) throw new KernelError('EINVAL', 'kwrite: bytes must be a Uint8Array');
    for (let done = 0; done < bytes.length; ) {
      const a = va + done;
      const off = a % PAGE_SIZE;
      const len = Math.min(bytes.length - done, PAGE_SIZE - off);
      const at = (this.kva.access(a, true) << PAGE_SHIFT) + off;
      this.uvm.ram.bytes.set(bytes.subarray(done, done + len), at);
      done += len;
    }
  }

  /**
   * onTrace: subscribe to loan/unloan/loanbreak/orphan/adopt/pageout/pagein/transfer events, delivered
   * synchronously as they happen; returns the unsubscribe function (idempotent)
   * => a page transfer's events (its 'transfer's and the 'orphan's of old pages on loan) are held
   *    until the whole transfer is done, so a listener never sees it half-way; other events come
   *    from inside the operation: a listener should look, not call into the kernel
   * => listener a function (EINVAL); one that throws is removed, with a process warning
   * => with no listener, the kernel pays one length check per event
   */
  onTrace(listener: (ev: TraceEvent) => void): () => void {
    if (typeof listener !== 'function')
      throw new KernelError('EINVAL', 'onTrace: listener must be a function');
    this.uvm.tracers.push(listener);
    return removeOnce(this.uvm.tracers, listener);
  }

  /**
   * addReclaimHook: let the pagedaemon ask a cache of kernel pages (a pool) for its idle pages back
   * when memory is short (as NetBSD's uvm_pageout drains every pool); returns the remove function
   * (idempotent)
   * => hook a function returning the pages it freed (EINVAL otherwise); one that throws is removed,
   *    with a process warning
   */
  addReclaimHook(hook: () => number): () => void {
    if (typeof hook !== 'function')
      throw new KernelError('EINVAL', 'addReclaimHook: hook must be a function');
    this.uvm.reclaimHooks.push(hook);
    return removeOnce(this.uvm.reclaimHooks, hook);
  }

  /** setIoHook: run `hook` in the middle of every pager and swap I/O (for injecting races in tests) */
  setIoHook(hook: ((ev: IoEvent) => Promise<void> | void) | null): void {
    if (hook !== null && typeof hook !== 'function')
      throw new KernelError('EINVAL', 'setIoHook: hook must be a function or null');
    this.uvm.ioHook = hook;
  }

  /** sync: wait for background work (write-back of unmapped files) and flush every cached file */
  async sync(): Promise<void> {
    for (const vn of [...this.uvm.vnodes.values()]) await vn.flush();
    await this.uvm.drain();
  }

  /** idle: wait until the pagedaemon and background write-back are done */
  async idle(): Promise<void> {
    await new Promise<void>((r) => setImmediate(r));
    await this.uvm.drain();
  }

  /**
   * shutdown: stop the kernel: exit every process, write every mapped file back and close it, and
   * wait for all background work (the pagedaemon, write-back). What is still on loan to the kernel
   * stays so (an unloan still works); nothing else is left behind, and no file for the garbage
   * collector to close.
   * => idempotent: every call returns the same promise, settled when the first call's work is done
   * => afterwards the kernel refuses new work with ESHUTDOWN (createProcess, checkKernel -- which
   *    the services built on a kernel call first); its processes have exited (ESRCH)
   */
  shutdown(): Promise<void> {
    if (this.down === null) this.down = this.stop();
    return this.down;
  }

  /** isShutdown: has shutdown() been called? */
  get isShutdown(): boolean {
    return this.down !== null;
  }

  private async stop(): Promise<void> {
    do {
      for (const p of this.processes) p.exit();
      await this.idle();
    } while (this.procs.size > 0 || this.uvm.vnodes.size > 0 || this.uvm.dyingVnodes.size > 0);
  }

  /** checkUp: ESHUTDOWN naming fn once the kernel is shut down */
  checkUp(fn: string): void {
    if (this.down !== null) throw new KernelError('ESHUTDOWN', `${fn}: the kernel is shut down`);
  }

  /**
   * stats: the machine's pages by state and its counters since boot (KernelStats)
   * => returns a new object; costs a pass over every page
   */
  stats(): KernelStats {
    const uvm = this.uvm;
    let loaned = 0;
    let orphans = 0;
    let busy = 0;
    /* active and inactive count pages neither wired nor busy, so that free + active + inactive + wired
       + busy = physPages; wired and busy pages may sit on a queue too (uvm_page.ts) */
    let active = 0;
    let inactive = 0;
    for (const pg of uvm.pages) {
      if (pg.loanCount > 0) loaned++;
      if (pg.loanCount > 0 && pg.isOrphan()) orphans++;
      if (pg.flags & PG_BUSY) busy++;
      const idle = pg.wireCount === 0 && (pg.flags & PG_BUSY) === 0;
      if (idle && pg.queue === PQ_ACTIVE) active++;
      if (idle && pg.queue === PQ_INACTIVE) inactive++;
    }
    const x = uvm.exp;
    return {
      physPages: uvm.pages.length,
      freePages: uvm.free.length,
      activePages: active,
      inactivePages: inactive,
      wiredPages: uvm.wiredPages,
      loanedPages: loaned,
      orphanPages: orphans,
      busyPages: busy,
      faults: x.faults,
      cowFaults: x.cowFaults,
      zeroFills: x.zeroFills,
      loanBreaks: x.loanBreaks,
      pageouts: x.pageouts,
      pageins: x.pageins,
      loans: x.loansObj + x.loansAnon + x.loansOA + x.loansZero,
      loansObj: x.loansObj,
      loansAnon: x.loansAnon,
      loansOA: x.loansOA,
      loansZero: x.loansZero,
      unloans: x.unloans,
      orphansFreed: x.orphansFreed,
      pglistAllocs: x.pglistAllocs,
      pglistFailed: x.pglistFailed,
      pagesTransferred: x.pagesTransferred,
      swapPages: uvm.swap.nslots,
      swapUsed: uvm.swap.used,
      anons: uvm.anons,
      kernelVaPages: this.kva.allocated,
      processes: this.procs.size,
    };
  }

  /** frameStates: one state code (FrameState) per physical frame, into `out` if given -- for page maps */
  frameStates(out?: Uint8Array): Uint8Array {
    return frameStates(this.uvm, out);
  }

  /** frameInfo: one frame in full: state, owner, offset, loan and wire counts, mappings by process */
  frameInfo(frame: number): FrameInfo {
    return frameInfo(this.uvm, this.processes, frame);
  }

  /** checkInvariants: audit every page, queue, mapping, map and amap; throws KernelPanic if broken */
  checkInvariants(): void {
    checkInvariants(
      this.uvm,
      [...this.procs.values()].map((p) => p.map),
    );
  }
}

/**
 * checkKernel: the check of a kernel that services built on one (pools, sockets) make first
 * => throws EINVAL naming fn unless kernel is a Kernel, ESHUTDOWN if it is shut down
 */
export function checkKernel(fn: string, kernel: unknown): asserts kernel is Kernel {
  if (!(kernel instanceof Kernel)) throw new KernelError('EINVAL', `${fn}: not a kernel`);
  kernel.checkUp(fn);
}

/* checkKernelRange: EINVAL unless [va, va + npages pages) is page-aligned kernel address space */
function checkKernelRange(fn: string, va: number, npages: number): void {
  checkAddress(fn, va, true);
  const end = VM_MIN_KERNEL_ADDRESS + KERNEL_VA_PAGES * PAGE_SIZE;
  if (va < VM_MIN_KERNEL_ADDRESS || va + npages * PAGE_SIZE > end) {
    throw new KernelError('EINVAL', `${fn}: ${String(npages)} pages at ${hex(va)} are not kernel addresses`);
  }
}

/* removeOnce: a function that takes this one registration of fn out of list, the first time it is called */
function removeOnce<T>(list: T[], fn: T): () => void {
  let registered = true;
  return () => {
    if (!registered) return;
    registered = false;
    const i = list.indexOf(fn);
    if (i >= 0) list.splice(i, 1);
  };
}
