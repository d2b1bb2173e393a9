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
 */
import {
  checkUserBuffer,
  KernelError,
  PAGE_SIZE,
  type Proc,
  Prot,
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

export interface MbufLoanOptions {
  /* give up waiting for kernel address space or clusters (EINTR); already aborted: EINTR at once */
  signal?: AbortSignal;
}

/*
 * mbufLoan: a chain over the user's bytes [va, va + len), by page loan (A->K or O->K).
 * => any va and len; the whole pages under them are loaned, the chain covers just the bytes
 * => waits while the loan would exceed the kernel address-space budget
 * => throws EINVAL (bad arguments or options, larger than the whole budget), ESRCH (the process has
 *    exited, or exits while we wait), EFAULT (unmapped or unreadable), EINTR (opts.signal aborted the
 *    wait for the budget, or had already aborted: then EINTR at once, once the process, va and len
 *    are checked, even if nothing would wait); then nothing is left loaned, wired or mapped
 * => when nothing needs to sleep (budget free, pages resident) the chain is built at once: the only
 *    await is the caller's
 */
export function mbufLoan(proc: Proc, va: number, len: number, opts: MbufLoanOptions = {}): Promise<Mbuf> {
  try {
    checkUserBuffer('mbuf_loan', proc, va, len);
    checkLoanOptions('mbuf_loan', opts);
    const sys = mbufSystem(proc.kernel);
    const start = va - (va % PAGE_SIZE);
    const npages = Math.ceil((va + len - start) / PAGE_SIZE);
    if (!sys.kva.tryReserve(npages)) {
      return sys.kva.reserve(npages, opts.signal).then(() => loanReserved(sys, proc, va, len, start, npages));
    }
    return loanReserved(sys, proc, va, len, start, npages);
  } catch (err) {
    return Promise.reject(err);
  }
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

/* checkLoanOptions: an object (EINVAL) whose signal, if any, is an AbortSignal (EINVAL) not aborted (EINTR) */
function checkLoanOptions(fn: string, opts: MbufLoanOptions): void {
  if (opts === null || typeof opts !== 'object') throw new KernelError('EINVAL', `${fn}: bad options`);
  checkSignal(fn, opts.signal);
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

/*
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
export function mbufCopyin(proc: Proc, va: number, len: number, opts: MbufLoanOptions = {}): Promise<Mbuf> {
  try {
    checkUserBuffer('mbuf_copyin', proc, va, len);
    checkLoanOptions('mbuf_copyin', opts);
    const sys = mbufSystem(proc.kernel);
    const n = Math.ceil(len / MCLBYTES);
    if (n > sys.clusters.capacity) {
      throw new KernelError(
        'EINVAL',
        `mbuf_copyin: ${len} bytes exceed the ${sys.clusters.capacity * MCLBYTES}-byte cluster pool`,
      );
    }
    proc.checkRange('mbuf_copyin', va, len, Prot.READ);
    const addrs = sys.clusters.getManySync(n);
    if (addrs === null)
      return sys.clusters.getMany(n, opts.signal).then((got) => copyInto(sys, proc, va, len, got));
    return copyInto(sys, proc, va, len, addrs);
  } catch (err) {
    return Promise.reject(err);
  }
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
  return proc.copyinPhys(va, len, (from, done, n) => {
    while (n > 0) {
      const ci = done >>> MCLSHIFT;
      const co = done & (MCLBYTES - 1);
      const k = Math.min(n, MCLBYTES - co);
      ram.copyWithin(addrs[ci] + co, from, from + k);
      from += k;
      done += k;
      n -= k;
    }
  });
}
