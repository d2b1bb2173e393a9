/*
 * mbuf_system.ts: the mbuf subsystem of one kernel: its cluster pool, its loan address-space budget,
 * and its counters (NetBSD's mbinit / mbstat). Made on first use with defaults, or by mbufInit().
 *
 * Both the pool and the budget are shared by every socket of the kernel. A taker that would rather do
 * something else than wait for them in line (a socket falls back from loan to copy, and otherwise
 * waits only for its own chunks) sleeps on the release broadcast instead: waitRelease() wakes at the
 * next cluster put or budget release, whoever made it.
 */
import { checkKernel, type Kernel, KernelError, option, PAGE_SIZE } from '@loanout/core';
import { MCLBYTES } from './mbuf.js';
import { KvaBudget } from './sokva.js';
import { Pool } from './subr_pool.js';

/** Options of mbufInit: the limits of a kernel's mbuf system. */
export interface MbufOptions {
  /** kernel address space loaned mbufs may map at once (default 16 MiB, NetBSD's somaxkva) */
  kvaBudgetBytes?: number;
  /** most memory the cluster pool may hold (default a quarter of RAM) */
  maxClusterBytes?: number;
}

/** mbufStats(kernel): the mbuf system's memory in use now and its counters since mbufInit. */
export interface MbufStats {
  /** clusters holding copies now */
  clustersInUse: number;
  /** pages the cluster pool holds (in use or idle) */
  clusterPoolPages: number;
  /** chains made by loan */
  loanChains: number;
  /** chains made by copy */
  copyChains: number;
  /** bytes carried by loan */
  loanedBytes: number;
  /** bytes carried by copy */
  copiedBytes: number;
  /** kernel address-space pages loaned chains map now */
  kvaPagesInUse: number;
  /** the loan budget, in pages of kernel address space */
  kvaBudgetPages: number;
  /** loans that had to wait for the budget */
  kvaWaits: number;
  /** loans waiting for the budget now */
  kvaWaiting: number;
  /** sends that wanted to loan but copied, because the loan budget was short (sosend's fallback) */
  loanFallbacks: number;
  /** bytes of those sends */
  loanFallbackBytes: number;
  /** chains taken past the cluster pool's limit: a socket's guaranteed minimum (see subr_pool.ts) */
  overdrafts: number;
  /** the receive side (soreceive): bytes copied out to processes, and moved as whole pages (page transfer) */
  recvCopiedBytes: number;
  /** bytes received by page transfer */
  recvTransferredBytes: number;
  /** pages received by page transfer */
  recvPagesTransferred: number;
  /** bytes zeroed after the received ones in partly filled pages that moved (recv tail 'zero-fill') */
  recvZeroFilledBytes: number;
  /** copies of bytes that could have moved as whole pages, by why not (unaligned, shared, no-run, ...) */
  recvFallbacks: Record<string, number>;
}

/**
 * MbufSystem: a kernel's mbuf system (mbufInit, mbufSystem): its cluster pool, its loan budget and its
 * counters, which mbufStats reports.
 *
 * @hideconstructor
 */
export class MbufSystem {
  /** the kernel it belongs to */
  readonly kernel: Kernel;
  /** @internal the cluster pool */
  readonly clusters: Pool;
  /** @internal the loan budget */
  readonly kva: KvaBudget;
  /** @internal */
  loanChains = 0;
  /** @internal */
  copyChains = 0;
  /** @internal */
  loanedBytes = 0;
  /** @internal */
  copiedBytes = 0;
  /** @internal */
  loanFallbacks = 0;
  /** @internal */
  loanFallbackBytes = 0;
  /** @internal */
  overdrafts = 0;
  /** @internal the socket layer's receive side adds here (soreceive.ts) */
  readonly recv = {
    copiedBytes: 0,
    transferredBytes: 0,
    pagesTransferred: 0,
    zeroFilledBytes: 0,
    fallbacks: {} as Record<string, number>,
  };
  private released: { promise: Promise<void>; resolve: () => void } | null = null;

  /** @internal mbufInit makes a kernel's mbuf system */
  constructor(kernel: Kernel, opts: MbufOptions) {
    this.kernel = kernel;
    const ram = kernel.uvm.pages.length * PAGE_SIZE;
    const budget = option(opts.kvaBudgetBytes, 16 * 1024 * 1024);
    const clusterBytes = option(opts.maxClusterBytes, Math.max(PAGE_SIZE, Math.floor(ram / 4)));
    checkBytes('kvaBudgetBytes', budget);
    checkBytes('maxClusterBytes', clusterBytes);
    this.kva = new KvaBudget(Math.floor(budget / PAGE_SIZE));
    this.clusters = new Pool(kernel, 'mclpl', MCLBYTES, Math.floor(clusterBytes / PAGE_SIZE));
    /* the pagedaemon may take the pool's idle pages back when memory runs short */
    kernel.addReclaimHook(() => this.clusters.reclaim());
    const wake = () => this.wakeReleased();
    this.kva.onRelease = wake;
    this.clusters.onRelease = wake;
  }

  /**
   * @internal
   * waitRelease: sleep until the next cluster put or loan-budget release, by anyone
   * => for takers that do not wait in line (nowait): they wake and try again
   */
  waitRelease(): Promise<void> {
    if (this.released === null) {
      let resolve!: () => void;
      const promise = new Promise<void>((r) => {
        resolve = r;
      });
      this.released = { promise, resolve };
    }
    return this.released.promise;
  }

  private wakeReleased(): void {
    const r = this.released;
    if (r === null) return;
    this.released = null;
    r.resolve();
  }

  /**
   * stats: the counters and memory in use (what mbufStats returns)
   * => returns a new object
   */
  stats(): MbufStats {
    return {
      clustersInUse: this.clusters.inUse,
      clusterPoolPages: this.clusters.npages,
      loanChains: this.loanChains,
      copyChains: this.copyChains,
      loanedBytes: this.loanedBytes,
      copiedBytes: this.copiedBytes,
      kvaPagesInUse: this.kva.usedPages,
      kvaBudgetPages: this.kva.limitPages,
      kvaWaits: this.kva.waits,
      kvaWaiting: this.kva.waiting,
      loanFallbacks: this.loanFallbacks,
      loanFallbackBytes: this.loanFallbackBytes,
      overdrafts: this.overdrafts,
      recvCopiedBytes: this.recv.copiedBytes,
      recvTransferredBytes: this.recv.transferredBytes,
      recvPagesTransferred: this.recv.pagesTransferred,
      recvZeroFilledBytes: this.recv.zeroFilledBytes,
      recvFallbacks: { ...this.recv.fallbacks },
    };
  }
}

function checkBytes(name: string, n: number): void {
  if (!Number.isSafeInteger(n) || n < PAGE_SIZE) {
    throw new KernelError('EINVAL', `mbinit: ${name} must be an integer >= ${PAGE_SIZE}, not ${String(n)}`);
  }
}

const systems = new WeakMap<Kernel, MbufSystem>();

/**
 * mbufInit: set up a kernel's mbuf subsystem with options (mbinit).
 * => throws EBUSY if it is already set up (explicitly or by first use), EINVAL for a non-kernel or
 *    bad options
 */
export function mbufInit(kernel: Kernel, opts: MbufOptions = {}): MbufSystem {
  checkKernel('mbinit', kernel);
  if (opts === null || typeof opts !== 'object') throw new KernelError('EINVAL', 'mbinit: bad options');
  if (systems.has(kernel))
    throw new KernelError('EBUSY', 'mbinit: mbufs already initialised for this kernel');
  const sys = new MbufSystem(kernel, opts);
  systems.set(kernel, sys);
  return sys;
}

/** mbufSystem: a kernel's mbuf subsystem, set up with defaults on first use */
export function mbufSystem(kernel: Kernel): MbufSystem {
  return systems.get(kernel) ?? mbufInit(kernel);
}

/**
 * mbufStats: counters of a kernel's mbuf subsystem
 * => reading them does not set the subsystem up: before first use (or mbufInit) nothing is in use,
 *    no budget is set, and every counter is 0; mbufInit with options still works afterwards
 */
export function mbufStats(kernel: Kernel): MbufStats {
  return systems.get(kernel)?.stats() ?? { ...NOTHING_YET, recvFallbacks: {} };
}

const NOTHING_YET: MbufStats = {
  clustersInUse: 0,
  clusterPoolPages: 0,
  loanChains: 0,
  copyChains: 0,
  loanedBytes: 0,
  copiedBytes: 0,
  kvaPagesInUse: 0,
  kvaBudgetPages: 0,
  kvaWaits: 0,
  kvaWaiting: 0,
  loanFallbacks: 0,
  loanFallbackBytes: 0,
  overdrafts: 0,
  recvCopiedBytes: 0,
  recvTransferredBytes: 0,
  recvPagesTransferred: 0,
  recvZeroFilledBytes: 0,
  recvFallbacks: {},
};
