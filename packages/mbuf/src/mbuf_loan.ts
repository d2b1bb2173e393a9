/*
 * mbuf_loan.ts: building mbuf chains from user memory -- by loan (sosend_loan) and by copy (uiomove).
 *
 * mbufLoan borrows the user's pages instead of copying them: it reserves kernel address space from the
 * budget, loans the whole pages covering [va, va + len) to the kernel (uvmLoan 'kernel': wired, every
 * user mapping made read-only), maps them read-only into kernel space, and builds a chain whose views
 * cover exactly the user's bytes -- physically adjacent frames coalesced into one view. Nothing is
 * copied: the views are RAM. A later user write to those pages faults and breaks the loan (the user
 * gets a copy), so the bytes in the chain can't change until it is freed.
 *
 * mbufCopyin is the ordinary path it replaces: it copies the bytes into 2 KiB clusters from the pool.
 * Both take one await per call (for faults, page-ins or waits), none per page.
 *
 * Three variants serve a borrower that must capture bytes *at a given moment* (the socket layer: a
 * send carries the bytes that were in memory when send() was called):
 *   mbufLoanNow / mbufCopyinNow   the chain now, synchronously, or null -- never a sleep
 *   mbufLoanAnons / mbufCopyinAnons  a chain from pages the caller pinned earlier, copy-on-write, by
 *                                 loaning them to anons (uvmLoanNow(..., 'anon')): whatever the
 *                                 process has written since, these are the bytes of the moment it
 *                                 pinned them
 * and two options let a caller decide what to do when the shared budgets are short: `nowait` (give up
 * with null instead of waiting in line, NetBSD's M_DONTWAIT) and `overdraft` (copies only: past the
 * cluster pool's limit, for a socket's guaranteed minimum -- subr_pool.ts).
 */
import {
  type Anon,
  checkKernel,
  checkUserBuffer,
  type Kernel,
  KernelError,
  PAGE_SIZE,
  type Proc,
  Prot,
  uvmLoanAnonPages,
  uvmLoanNow,
  uvmLoanTry,
  uvmUnloanPages,
  type VmPage,
} from '@loanout/core';
import { checkSignal } from './kern_condvar.js';
import {
  M_EXT,
  M_EXT_CLUSTER,
  M_EXT_PAGES,
  M_EXT_ROMAP,
  M_PKTHDR,
  Mbuf,
  MCLBYTES,
  MCLSHIFT,
  mFreem,
  mLink,
} from './mbuf.js';
import { type MbufSystem, mbufSystem } from './mbuf_system.js';

/** Options of the chain builders (mbufLoan, mbufCopyin and the rest). */
export interface MbufLoanOptions {
  /** give up waiting for kernel address space or clusters (EINTR); already aborted: EINTR at once */
  signal?: AbortSignal;
  /**
   * resolve null instead of waiting in line for the loan budget or for clusters (M_DONTWAIT); page-ins
   * and the pool's growth still sleep
   */
  nowait?: boolean;
  /** copies only: take the clusters past the pool's limit and ahead of its line (see subr_pool.ts) */
  overdraft?: boolean;
}

/** MbufLoanOptions for a caller that waits: the chain always comes */
export type MbufWaitOptions = MbufLoanOptions & { nowait?: false };

/**
 * mbufLoan: a chain over the user's bytes [va, va + len), by page loan (A->K or O->K).
 * => any va and len; the whole pages under them are loaned, the chain covers just the bytes
 * => waits while the loan would exceed the kernel address-space budget; with opts.nowait resolves
 *    null instead (nothing taken)
 * => throws EINVAL (bad arguments or options -- overdraft is for copies --, larger than the whole budget), ESRCH (the process has
 *    exited, or exits while we wait), EFAULT (unmapped or unreadable), EINTR (opts.signal aborted the
 *    wait for the budget, or had already aborted: then EINTR at once, once the process, va and len
 *    are checked, even if nothing would wait); then nothing is left loaned, wired or mapped
 * => when nothing needs to sleep (budget free, pages resident) the chain is built at once: the only
 *    await is the caller's
 */
export function mbufLoan(proc: Proc, va: number, len: number, opts?: MbufWaitOptions): Promise<Mbuf>;
/**
 * mbufLoan with opts.nowait: the chain, or null (nothing taken) when the loan budget is short.
 * => as mbufLoan above
 */
export function mbufLoan(proc: Proc, va: number, len: number, opts: MbufLoanOptions): Promise<Mbuf | null>;
export function mbufLoan(
  proc: Proc,
  va: number,
  len: number,
  opts: MbufLoanOptions = {},
): Promise<Mbuf | null> {
  try {
    checkUserBuffer('mbuf_loan', proc, va, len);
    checkLoanOptions('mbuf_loan', opts, false);
    const sys = mbufSystem(proc.kernel);
    const start = va - (va % PAGE_SIZE);
    const npages = Math.ceil((va + len - start) / PAGE_SIZE);
    return withBudget(sys, npages, opts, () => loanReserved(sys, proc, va, len, start, npages));
  } catch (err) {
    return Promise.reject(err);
  }
}

/*
 * withBudget: run a loan once npages of the loan budget are reserved for it -- at once if they are
 * free, else after waiting in line for them (opts.signal ends the wait: EINTR), or null at once with
 * opts.nowait. The loan owns the reservation: it gives it back if it fails.
 */
function withBudget(
  sys: MbufSystem,
  npages: number,
  opts: MbufLoanOptions,
  loan: () => Promise<Mbuf>,
): Promise<Mbuf | null> {
  if (sys.kva.tryReserve(npages)) return loan();
  if (opts.nowait === true) return Promise.resolve(null);
  return sys.kva.reserve(npages, opts.signal).then(loan);
}

/* loanReserved: the loan itself, its budget reserved; gives the budget back on failure */
function loanReserved(sys: MbufSystem, proc: Proc, va: number, len: number, start: number, npages: number) {
  let pages: VmPage[] | Promise<VmPage[]>;
  try {
    if (proc.exited) throw new KernelError('ESRCH', `mbuf_loan: process ${proc.pid} has exited`);
    pages = uvmLoanTry(proc.map, start, npages * PAGE_SIZE, 'kernel');
  } catch (err) {
    sys.kva.release(npages);
    return Promise.reject(err);
  }
  if (pages instanceof Promise) {
    return pages.then(
      (got) => loanMapped(sys, got, va, len, start),
      (err) => {
        sys.kva.release(npages);
        throw proc.exitedMeanwhile(err);
      },
    );
  }
  try {
    return Promise.resolve(loanMapped(sys, pages, va, len, start));
  } catch (err) {
    return Promise.reject(err);
  }
}

/* loanMapped: map the loaned pages read-only into kernel space and build the chain over them */
function loanMapped(sys: MbufSystem, pages: VmPage[], va: number, len: number, start: number): Mbuf {
  const kva = mapLoan(sys, pages, pages.length);
  sys.loanChains++;
  sys.loanedBytes += len;
  return buildLoanChain(sys, pages, kva, va - start, len);
}

/*
 * checkLoanOptions: an object (EINVAL) whose signal, if any, is an AbortSignal (EINVAL) not aborted
 * (EINTR), and whose nowait and overdraft are booleans if given (overdraft only where `copies`)
 */
function checkLoanOptions(fn: string, opts: MbufLoanOptions, copies: boolean): void {
  if (opts === null || typeof opts !== 'object') throw new KernelError('EINVAL', `${fn}: bad options`);
  for (const flag of ['nowait', 'overdraft'] as const) {
    const v = opts[flag];
    if (v !== undefined && typeof v !== 'boolean') {
      throw new KernelError('EINVAL', `${fn}: ${flag} must be a boolean`);
    }
  }
  if (opts.overdraft === true && !copies) {
    throw new KernelError('EINVAL', `${fn}: loans never overdraft the budget (copy instead)`);
  }
  checkSignal(fn, opts.signal);
}

/**
 * mbufLoanNow: mbufLoan without a sleep: the chain over [va, va + len) now, or null.
 * => null when the loan budget is short or some page would need I/O, a BUSY page or memory; then
 *    nothing is loaned, wired, mapped or reserved
 * => throws what mbufLoan throws for bad arguments (EINVAL, ESRCH, EFAULT); then nothing is left
 */
export function mbufLoanNow(proc: Proc, va: number, len: number): Mbuf | null {
  checkUserBuffer('mbuf_loan', proc, va, len);
  const sys = mbufSystem(proc.kernel);
  const start = va - (va % PAGE_SIZE);
  const npages = Math.ceil((va + len - start) / PAGE_SIZE);
  if (npages > sys.kva.limitPages) {
    throw new KernelError(
      'EINVAL',
      `mbuf_loan: ${npages} pages exceed the ${sys.kva.limitPages}-page loan budget`,
    );
  }
  if (!sys.kva.tryReserve(npages)) return null;
  let pages: VmPage[] | null;
  try {
    pages = uvmLoanNow(proc.map, start, npages * PAGE_SIZE, 'kernel');
  } catch (err) {
    sys.kva.release(npages);
    throw err;
  }
  if (pages === null) {
    sys.kva.release(npages);
    return null;
  }
  return loanMapped(sys, pages, va, len, start);
}

/**
 * mbufLoanAnons: a chain over bytes [off, off + len) of the pages of `anons`, by loan (A->K): the bytes
 * the caller pinned copy-on-write when it loaned them to anons, zero-copy.
 * => anons: the anons of the pages the bytes span, in order, each held by the caller (it keeps its
 *    references: uvmUnloanAnons them when it no longer needs them); off in 0 .. PAGE_SIZE - 1 is where
 *    the bytes start in the first; EINVAL otherwise
 * => waits for the loan budget as mbufLoan does (opts.nowait: null instead); pages on swap are
 *    brought in
 * => throws EINVAL, EINTR (opts.signal), EIO / ENOMEM (swap-in); then nothing is left loaned or reserved
 */
export function mbufLoanAnons(
  kernel: Kernel,
  anons: readonly Anon[],
  off: number,
  len: number,
  opts: MbufLoanOptions = {},
): Promise<Mbuf | null> {
  try {
    checkAnonSpan('mbuf_loan', kernel, anons, off, len);
    checkLoanOptions('mbuf_loan', opts, false);
    const sys = mbufSystem(kernel);
    return withBudget(sys, anons.length, opts, () => loanAnonsReserved(sys, anons, off, len));
  } catch (err) {
    return Promise.reject(err);
  }
}

/* loanAnonsReserved: the A->K loans of held anons, their budget reserved; gives it back on failure */
async function loanAnonsReserved(sys: MbufSystem, anons: readonly Anon[], off: number, len: number) {
  let pages: VmPage[];
  try {
    pages = await uvmLoanAnonPages(anons);
  } catch (err) {
    sys.kva.release(anons.length);
    throw err;
  }
  return loanMapped(sys, pages, off, len, 0);
}

/* checkAnonSpan: kernel a Kernel, anons exactly the pages [off, off + len) spans, off inside the first */
function checkAnonSpan(fn: string, kernel: Kernel, anons: readonly Anon[], off: number, len: number): void {
  checkKernel(fn, kernel);
  if (!Number.isSafeInteger(off) || off < 0 || off >= PAGE_SIZE) {
    throw new KernelError('EINVAL', `${fn}: bad offset ${String(off)} in the first page`);
  }
  if (!Number.isSafeInteger(len) || len < 1)
    throw new KernelError('EINVAL', `${fn}: bad length ${String(len)}`);
  if (!Array.isArray(anons) || anons.length !== Math.ceil((off + len) / PAGE_SIZE)) {
    throw new KernelError(
      'EINVAL',
      `${fn}: the anons are not the ${Math.ceil((off + len) / PAGE_SIZE)} pages the bytes span`,
    );
  }
  for (const a of anons) {
    if (a?.uvm !== kernel.uvm) throw new KernelError('EINVAL', `${fn}: an anon of another kernel`);
  }
}

/*
 * mapLoan: enter the loaned pages read-only into kernel space. The pages come straight from uvmLoan,
 * so this calls the kernel pmap itself (pmap_kenter_pa), without Kernel.kenter's argument checks.
 */
function mapLoan(sys: MbufSystem, pages: VmPage[], npages: number): number {
  try {
    const kva = sys.kernel.kva.alloc(npages);
    const pmap = sys.kernel.uvm.mmu.kernelPmap;
    const vpn = kva / PAGE_SIZE;
    for (let i = 0; i < npages; i++) pmap.kenter(vpn + i, pages[i].frame, Prot.READ);
    return kva;
  } catch (err) {
    uvmUnloanPages(pages);
    sys.kva.release(npages);
    throw err;
  }
}

/* The loaned pages behind a chain: released when the chain's last mbuf is freed. */
class LoanExt {
  refs = 0;
  private readonly sys: MbufSystem;
  private readonly pages: VmPage[];
  private readonly kva: number;

  constructor(sys: MbufSystem, pages: VmPage[], kva: number) {
    this.sys = sys;
    this.pages = pages;
    this.kva = kva;
  }

  release(): void {
    const n = this.pages.length;
    this.sys.kernel.uvm.mmu.kernelPmap.kremove(this.kva / PAGE_SIZE, n);
    uvmUnloanPages(this.pages);
    this.sys.kernel.kva.free(this.kva, n);
    this.sys.kva.release(n);
  }
}

/* buildLoanChain: one mbuf per run of physically adjacent frames, covering [off, off + len) */
function buildLoanChain(sys: MbufSystem, pages: VmPage[], kva: number, off: number, len: number): Mbuf {
  const ram = sys.kernel.uvm.ram;
  const ext = new LoanExt(sys, pages, kva);
  const end = off + len;
  let head: Mbuf | null = null;
  let tail: Mbuf | null = null;
  for (let i = 0; i < pages.length; ) {
    let j = i;
    while (j + 1 < pages.length && pages[j + 1].frame === pages[j].frame + 1) j++;
    const lo = Math.max(i * PAGE_SIZE, off);
    const hi = Math.min((j + 1) * PAGE_SIZE, end);
    const at = pages[i].frame * PAGE_SIZE + (lo - i * PAGE_SIZE);
    const view =
      hi - lo === PAGE_SIZE && i === j ? ram.frame(pages[i].frame) : Buffer.from(ram.buffer, at, hi - lo);
    const m = new Mbuf(sys.kernel, M_EXT | M_EXT_PAGES | M_EXT_ROMAP, view, kva + lo, ext);
    ext.refs++;
    if (tail === null) head = m;
    else mLink(tail, m);
    tail = m;
    i = j + 1;
  }
  head!.flags |= M_PKTHDR;
  head!.pkthdrLen = len;
  return head!;
}

/* A cluster behind one mbuf. */
class ClusterExt {
  refs = 1;
  private readonly sys: MbufSystem;
  private readonly addr: number;

  constructor(sys: MbufSystem, addr: number) {
    this.sys = sys;
    this.addr = addr;
  }

  release(): void {
    this.sys.clusters.put(this.addr);
  }
}

/**
 * mbufCopyin: a chain holding a copy of the user's bytes [va, va + len) in 2 KiB clusters (uiomove).
 * => any va and len; takes all its clusters at once, waiting in line (holding none) while the pool is
 *    at its limit
 * => throws EINVAL (bad arguments or options, more than the whole cluster pool), ESRCH (exited),
 *    EFAULT (unmapped or unreadable), ENOMEM (no page for the pool to grow by: the pool then gives its
 *    idle pages back), EINTR (opts.signal aborted the wait for clusters, or had already aborted: then
 *    EINTR at once, once the process, va and len are checked, even if nothing would wait); then no
 *    cluster is kept
 * => when nothing needs to sleep (clusters free, pages mapped) the copy is done at once
 */
export function mbufCopyin(proc: Proc, va: number, len: number, opts?: MbufWaitOptions): Promise<Mbuf>;
/**
 * mbufCopyin with opts.nowait: the chain, or null (nothing taken) when the cluster pool is at its limit.
 * => as mbufCopyin above
 */
export function mbufCopyin(proc: Proc, va: number, len: number, opts: MbufLoanOptions): Promise<Mbuf | null>;
export function mbufCopyin(
  proc: Proc,
  va: number,
  len: number,
  opts: MbufLoanOptions = {},
): Promise<Mbuf | null> {
  try {
    checkUserBuffer('mbuf_copyin', proc, va, len);
    checkLoanOptions('mbuf_copyin', opts, true);
    const sys = mbufSystem(proc.kernel);
    const n = clusterCount('mbuf_copyin', sys, len);
    proc.checkRange('mbuf_copyin', va, len, Prot.READ);
    const got = takeClusters(sys, n, opts);
    if (got === null) return Promise.resolve(null);
    if (got instanceof Promise) return got.then((addrs) => copyInto(sys, proc, va, len, addrs));
    return copyInto(sys, proc, va, len, got);
  } catch (err) {
    return Promise.reject(err);
  }
}

/* clusterCount: clusters for len bytes; EINVAL if more than the whole pool */
function clusterCount(fn: string, sys: MbufSystem, len: number): number {
  const n = Math.ceil(len / MCLBYTES);
  if (n > sys.clusters.capacity) {
    throw new KernelError(
      'EINVAL',
      `${fn}: ${len} bytes exceed the ${sys.clusters.capacity * MCLBYTES}-byte cluster pool`,
    );
  }
  return n;
}

/*
 * takeClusters: n clusters as opts allow: now if they are free (an array), or by waiting or growing
 * (a promise), or null when opts.nowait and they could not be had without waiting in line
 */
function takeClusters(
  sys: MbufSystem,
  n: number,
  opts: MbufLoanOptions,
): number[] | Promise<number[]> | null {
  const overdraft = opts.overdraft === true;
  const over = overdraft && !sys.clusters.fits(n);
  const addrs = sys.clusters.getManySync(n, overdraft);
  if (addrs === null && opts.nowait === true && !overdraft && !sys.clusters.fits(n)) return null;
  if (over) sys.overdrafts++;
  return addrs ?? sys.clusters.getMany(n, opts.signal, overdraft);
}

/**
 * mbufCopyinNow: mbufCopyin without a sleep: a copy of [va, va + len) now, or null.
 * => null when the clusters are not free now (under the pool's limit, or past it with opts.overdraft)
 *    or some page would have to be brought in; then no cluster is kept
 * => throws what mbufCopyin throws for bad arguments (EINVAL, ESRCH, EFAULT); then nothing is kept
 */
export function mbufCopyinNow(proc: Proc, va: number, len: number, opts: MbufLoanOptions = {}): Mbuf | null {
  checkUserBuffer('mbuf_copyin', proc, va, len);
  checkLoanOptions('mbuf_copyin', opts, true);
  const sys = mbufSystem(proc.kernel);
  const n = clusterCount('mbuf_copyin', sys, len);
  proc.checkRange('mbuf_copyin', va, len, Prot.READ);
  const over = opts.overdraft === true && !sys.clusters.fits(n);
  const addrs = sys.clusters.getManySync(n, opts.overdraft === true);
  if (addrs === null) return null;
  if (over) sys.overdrafts++;
  const head = buildClusterChain(sys, addrs, len);
  let done: boolean;
  try {
    done = proc.copyinPhysNow(va, len, clusterSink(addrs, sys.kernel.uvm.ram.bytes));
  } catch (err) {
    mFreem(head);
    throw err;
  }
  if (!done) {
    mFreem(head);
    return null;
  }
  return copied(sys, head, len);
}

/**
 * mbufCopyinAnons: a chain holding a copy of bytes [off, off + len) of the pages of `anons`, in
 * clusters: the bytes the caller pinned copy-on-write when it loaned them to anons.
 * => anons and off as mbufLoanAnons (the caller keeps its references)
 * => clusters as mbufCopyin takes them (opts.nowait: null instead of waiting; opts.overdraft);
 *    pages on swap are brought in (each page is wired while it is copied)
 * => throws EINVAL, EINTR, ENOMEM, EIO; then no cluster is kept and no loan remains
 */
export function mbufCopyinAnons(
  kernel: Kernel,
  anons: readonly Anon[],
  off: number,
  len: number,
  opts: MbufLoanOptions = {},
): Promise<Mbuf | null> {
  try {
    checkAnonSpan('mbuf_copyin', kernel, anons, off, len);
    checkLoanOptions('mbuf_copyin', opts, true);
    const sys = mbufSystem(kernel);
    const got = takeClusters(sys, clusterCount('mbuf_copyin', sys, len), opts);
    if (got === null) return Promise.resolve(null);
    return Promise.resolve(got).then((addrs) => copyAnonsInto(sys, anons, off, len, addrs));
  } catch (err) {
    return Promise.reject(err);
  }
}

/* copyAnonsInto: wire the anons' pages (an A->K loan), copy the bytes into our clusters, unloan */
async function copyAnonsInto(
  sys: MbufSystem,
  anons: readonly Anon[],
  off: number,
  len: number,
  addrs: number[],
) {
  const head = buildClusterChain(sys, addrs, len);
  let pages: VmPage[];
  try {
    pages = await uvmLoanAnonPages(anons);
  } catch (err) {
    mFreem(head);
    throw err;
  }
  const sink = clusterSink(addrs, sys.kernel.uvm.ram.bytes);
  for (let i = 0, done = 0; done < len; i++) {
    const from = i === 0 ? off : 0;
    const n = Math.min(PAGE_SIZE - from, len - done);
    sink(pages[i].frame * PAGE_SIZE + from, done, n);
    done += n;
  }
  uvmUnloanPages(pages);
  return copied(sys, head, len);
}

/* copyInto: copy the user's bytes into clusters we hold; gives them back on failure */
function copyInto(sys: MbufSystem, proc: Proc, va: number, len: number, addrs: number[]): Promise<Mbuf> {
  if (proc.exited) {
    for (const a of addrs) sys.clusters.put(a);
    return Promise.reject(new KernelError('ESRCH', `mbuf_copyin: process ${proc.pid} has exited`));
  }
  const head = buildClusterChain(sys, addrs, len);
  let copying: Promise<void> | undefined;
  try {
    copying = copyIntoClusters(proc, va, len, addrs, sys.kernel.uvm.ram.bytes);
  } catch (err) {
    mFreem(head);
    return Promise.reject(err);
  }
  if (copying === undefined) return Promise.resolve(copied(sys, head, len));
  return copying.then(
    () => copied(sys, head, len),
    (err) => {
      mFreem(head);
      throw err;
    },
  );
}

function copied(sys: MbufSystem, head: Mbuf, len: number): Mbuf {
  sys.copyChains++;
  sys.copiedBytes += len;
  return head;
}

function buildClusterChain(sys: MbufSystem, addrs: number[], len: number): Mbuf {
  let head: Mbuf | null = null;
  let tail: Mbuf | null = null;
  for (let i = 0; i < addrs.length; i++) {
    const size = Math.min(MCLBYTES, len - i * MCLBYTES);
    const full = sys.clusters.view(addrs[i]);
    const view = size === MCLBYTES ? full : full.subarray(0, size);
    const m = new Mbuf(
      sys.kernel,
      M_EXT | M_EXT_CLUSTER,
      view,
      sys.clusters.kvaOf(addrs[i]),
      new ClusterExt(sys, addrs[i]),
    );
    if (tail === null) head = m;
    else mLink(tail, m);
    tail = m;
  }
  head!.flags |= M_PKTHDR;
  head!.pkthdrLen = len;
  return head!;
}

/* copyIntoClusters: one walk through the MMU; each piece moved within RAM into its cluster(s) */
function copyIntoClusters(
  proc: Proc,
  va: number,
  len: number,
  addrs: number[],
  ram: Uint8Array,
): Promise<void> | undefined {
  return proc.copyinPhys(va, len, clusterSink(addrs, ram));
}

/* clusterSink: moves the done'th.. bytes of a copy, found at RAM offset `from`, into their cluster(s) */
function clusterSink(addrs: number[], ram: Uint8Array): (from: number, done: number, n: number) => void {
  return (from, done, n) => {
    while (n > 0) {
      const ci = done >>> MCLSHIFT;
      const co = done & (MCLBYTES - 1);
      const k = Math.min(n, MCLBYTES - co);
      ram.copyWithin(addrs[ci] + co, from, from + k);
      from += k;
      done += k;
      n -= k;
    }
  };
}
