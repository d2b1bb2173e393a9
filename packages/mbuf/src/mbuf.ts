/*
 * mbuf.ts: the mbuf, the kernel's network buffer, and the operations on chains of them (NetBSD's
 * sys/mbuf.h and kern/uipc_mbuf.c).
 *
 * A packet is a chain of mbufs linked by `next`; the first carries the packet header with the total
 * length. Each mbuf's data is a zero-copy `view` of RAM -- exactly its `len` bytes -- and `kva`, the
 * kernel virtual address of the same bytes, through which the kernel itself reads and writes them.
 * Data lives in one of two kinds of external storage:
 *
 *   cluster  (M_EXT | M_EXT_CLUSTER) a 2 KiB cluster from the cluster pool, filled by copying
 *   pages    (M_EXT | M_EXT_PAGES | M_EXT_ROMAP) user pages on loan to the kernel (uvmLoan 'kernel'),
 *            wired and mapped read-only; the mbuf covers just the user's bytes in them
 *
 * Freeing an mbuf drops its reference to its storage; the last reference frees it (a cluster goes back
 * to its pool; loaned pages are unmapped, unloaned, and their address space given back).
 *
 * Misuse is caught at the cost of a flag per mbuf. A freed mbuf keeps `freed`, so every walk of a chain
 * (mLength, mBuffers, mCopydata, mCopyback, mAdj, mCat, mFreem) panics at one that an mFree took out
 * from under its chain -- mFreem checks the whole chain before it frees anything, so the misuse is
 * reported, not half done. An mbuf that another's `next` points to is `linked`, so mCat refuses to
 * append it (two chains sharing a tail would free it twice); the chain builders and mCat link through
 * mLink, and mFree unlinks the mbuf after the one it frees.
 */
import { type Kernel, KernelError, KernelPanic } from '@loanout/core';

/** The size of a cluster, the 2 KiB buffer copies go into (NetBSD's MCLBYTES). */
export const MCLBYTES = 2048;
/** log2 of MCLBYTES */
export const MCLSHIFT = 11;

/** m_flags: the first mbuf of a packet (pkthdrLen is valid) */
export const M_PKTHDR = 0x01;
/** m_flags: the data is in external storage (a cluster or loaned pages) */
export const M_EXT = 0x02;
/** m_flags: the storage is a cluster (a copy) */
export const M_EXT_CLUSTER = 0x04;
/** m_flags: the storage is loaned user pages (no copy) */
export const M_EXT_PAGES = 0x08;
/** m_flags: the storage is mapped read-only (loaned pages: writing them panics) */
export const M_EXT_ROMAP = 0x10;

/** External storage shared by the mbufs that point into it. */
export interface MbufExt {
  /** @readonly the mbufs that point into the storage */
  refs: number;
  /** @internal give the storage back (the last mFree does) */
  release(): void;
}

/**
 * Mbuf: one buffer of a chain (NetBSD's struct mbuf) -- a view of a cluster (a copy) or of loaned pages. The
 * chain builders (mbufLoan, mbufCopyin, ...) make chains; mFreem frees one; its fields are the network's.
 *
 * @hideconstructor
 */
export class Mbuf {
  /** @readonly the next mbuf of the chain, or null */
  next: Mbuf | null = null;
  /** @readonly M_* flags */
  flags: number;
  /** @readonly bytes of data in this mbuf */
  len: number;
  /** @readonly total length of the packet (valid on the first mbuf, M_PKTHDR) */
  pkthdrLen = 0;
  /** @readonly exactly this mbuf's data: a view of RAM */
  view: Buffer;
  /** @readonly kernel virtual address of view[0] */
  kva: number;
  /** the external storage, shared by the mbufs that point into it */
  readonly ext: MbufExt;
  /** the kernel whose memory it is */
  readonly kernel: Kernel;
  /** @readonly mFree has freed it: it must not be used again */
  freed = false;
  /** @internal another mbuf's `next` points here (set by the chain builders and mCat): not the head of a chain */
  linked = false;

  /** @internal the chain builders make mbufs */
  constructor(kernel: Kernel, flags: number, view: Buffer, kva: number, ext: MbufExt) {
    this.kernel = kernel;
    this.flags = flags;
    this.view = view;
    this.len = view.length;
    this.kva = kva;
    this.ext = ext;
  }

  /** isLoaned: the data is loaned user pages (M_EXT_PAGES), not a copy */
  get isLoaned(): boolean {
    return (this.flags & M_EXT_PAGES) !== 0;
  }
}

/** mLink: put n after m in a chain (the chain builders' and mCat's only way to link) */
export function mLink(m: Mbuf, n: Mbuf): void {
  m.next = n;
  n.linked = true;
}

function checkMbuf(fn: string, m: unknown): asserts m is Mbuf {
  if (!(m instanceof Mbuf)) throw new KernelError('EINVAL', `${fn}: not an mbuf chain`);
}

/*
 * chainLength: the data bytes of a chain whose every mbuf is live
 * => panics at a freed mbuf anywhere in it (the head, or one freed alone with mFree while the chain
 *    still pointed at it): a use after free
 */
function chainLength(fn: string, m: Mbuf): number {
  let n = 0;
  for (let x: Mbuf | null = m; x !== null; x = x.next) {
    if (x.freed) usedAfterFree(fn, x === m);
    n += x.len;
  }
  return n;
}

function usedAfterFree(fn: string, head: boolean): never {
  throw new KernelPanic(
    head ? `${fn}: mbuf used after free` : `${fn}: the chain holds a freed mbuf (used after free)`,
  );
}

/**
 * mFreem: free a whole chain (m_freem).
 * => panics on a chain already freed (double free), or one holding an mbuf freed on its own; the
 *    chain is checked first, so then nothing is freed
 */
export function mFreem(m: Mbuf): void {
  checkMbuf('m_freem', m);
  if (m.freed) throw new KernelPanic('m_freem: mbuf freed twice');
  chainLength('m_freem', m);
  for (let n: Mbuf | null = m; n !== null; ) {
    const next: Mbuf | null = n.next;
    freeOne(n);
    n = next;
  }
}

/**
 * mFree: free one mbuf (m_free); its storage goes when its last reference does. The mbuf after it,
 * if any, becomes the head of a chain of its own.
 * => panics on an mbuf already freed
 */
export function mFree(m: Mbuf): void {
  checkMbuf('m_free', m);
  if (m.freed) throw new KernelPanic('m_free: mbuf freed twice');
  freeOne(m);
}

function freeOne(m: Mbuf): void {
  m.freed = true;
  if (m.next !== null) m.next.linked = false;
  m.next = null;
  if (--m.ext.refs === 0) m.ext.release();
}

/**
 * mLength: the number of data bytes in a chain (m_length)
 * => panics if the chain holds a freed mbuf
 */
export function mLength(m: Mbuf): number {
  checkMbuf('m_length', m);
  return chainLength('m_length', m);
}

/**
 * mBuffers: the chain's data as zero-copy Buffer views of RAM, in order (for node:net writes).
 * => no copy and no allocation beyond the array; panics if the chain holds a freed mbuf
 */
export function mBuffers(m: Mbuf): Buffer[] {
  checkMbuf('m_buffers', m);
  const out: Buffer[] = [];
  for (let x: Mbuf | null = m; x !== null; x = x.next) {
    if (x.freed) usedAfterFree('m_buffers', x === m);
    if (x.len > 0) out.push(x.view);
  }
  return out;
}

/**
 * mCopydata: copy n bytes starting at off out of a chain (m_copydata), read through the kernel mapping.
 * => EINVAL if [off, off + n) is not inside the chain
 */
export function mCopydata(m: Mbuf, off: number, n: number): Buffer {
  checkMbuf('m_copydata', m);
  checkSpan('m_copydata', m, off, n);
  const out = Buffer.allocUnsafe(n);
  let done = 0;
  forEachSpan(m, off, n, (x, at, len) => {
    out.set(x.kernel.kread(x.kva + at, len), done);
    done += len;
  });
  return out;
}

/**
 * mCopyback: write bytes into a chain at off (m_copyback), through the kernel mapping.
 * => a loaned mbuf is mapped read-only: writing it is a kernel fault (KernelPanic), never a copy
 * => EINVAL if the bytes aren't a Uint8Array or don't fit inside the chain
 */
export function mCopyback(m: Mbuf, off: number, bytes: Uint8Array): void {
  checkMbuf('m_copyback', m);
  if (!(bytes instanceof Uint8Array))
    throw new KernelError('EINVAL', 'm_copyback: bytes must be a Uint8Array');
  checkSpan('m_copyback', m, off, bytes.length);
  let done = 0;
  forEachSpan(m, off, bytes.length, (x, at, len) => {
    x.kernel.kwrite(x.kva + at, bytes.subarray(done, done + len));
    done += len;
  });
}

/**
 * mAdj: trim n bytes from the head (n > 0) or the tail (n < 0) of a chain (m_adj).
 * => mbufs left empty stay in the chain with len 0; the packet header length follows
 */
export function mAdj(m: Mbuf, n: number): void {
  checkMbuf('m_adj', m);
  const total = chainLength('m_adj', m);
  if (!Number.isSafeInteger(n) || Math.abs(n) > total)
    throw new KernelError('EINVAL', `m_adj: bad count ${String(n)}`);
  let left = Math.abs(n);
  if (n > 0) {
    for (let x: Mbuf | null = m; x !== null && left > 0; x = x.next)
      left -= trimHead(x, Math.min(left, x.len));
  } else {
    const all: Mbuf[] = [];
    for (let x: Mbuf | null = m; x !== null; x = x.next) all.push(x);
    for (let i = all.length - 1; i >= 0 && left > 0; i--)
      left -= trimTail(all[i], Math.min(left, all[i].len));
  }
  if (m.flags & M_PKTHDR) m.pkthdrLen -= Math.abs(n);
}

function trimHead(x: Mbuf, k: number): number {
  x.view = x.view.subarray(k);
  x.kva += k;
  x.len -= k;
  return k;
}

function trimTail(x: Mbuf, k: number): number {
  x.view = x.view.subarray(0, x.len - k);
  x.len -= k;
  return k;
}

/**
 * mCat: append chain n to chain m (m_cat); the packet header of m grows
 * => EINVAL if n is not the head of a chain of its own (it is inside another chain: the two would
 *    share a tail, freed twice), if the chains share an mbuf (the result would be a loop; m and n the
 *    same chain, too), or if they belong to different kernels; panics if either holds a freed mbuf;
 *    all checked before anything changes
 */
export function mCat(m: Mbuf, n: Mbuf): void {
  checkMbuf('m_cat', m);
  checkMbuf('m_cat', n);
  if (n.kernel !== m.kernel) throw new KernelError('EINVAL', 'm_cat: the chains belong to different kernels');
  if (n.linked) throw new KernelError('EINVAL', 'm_cat: the second chain is inside another chain');
  const last = lastApart(m, n);
  lastApart(n, m);
  const len = chainLength('m_cat', n);
  mLink(last, n);
  if (m.flags & M_PKTHDR) m.pkthdrLen += len;
  n.flags &= ~M_PKTHDR;
}

/* lastApart: the last mbuf of live chain m, which must not contain `other` (EINVAL) */
function lastApart(m: Mbuf, other: Mbuf): Mbuf {
  for (let x = m; ; x = x.next) {
    if (x.freed) usedAfterFree('m_cat', x === m);
    if (x === other) throw new KernelError('EINVAL', 'm_cat: the chains overlap');
    if (x.next === null) return x;
  }
}

/* checkSpan: [off, off + n) inside the chain (EINVAL); panics if the chain holds a freed mbuf */
function checkSpan(fn: string, m: Mbuf, off: number, n: number): void {
  const total = chainLength(fn, m);
  if (!Number.isSafeInteger(off) || !Number.isSafeInteger(n) || off < 0 || n < 0 || off + n > total) {
    throw new KernelError('EINVAL', `${fn}: [${String(off)}, +${String(n)}) is not inside the chain`);
  }
}

/* forEachSpan: visit the pieces of [off, off + n) mbuf by mbuf */
function forEachSpan(m: Mbuf, off: number, n: number, fn: (x: Mbuf, at: number, len: number) => void): void {
  let x: Mbuf | null = m;
  while (x !== null && off >= x.len) {
    off -= x.len;
    x = x.next;
  }
  while (x !== null && n > 0) {
    const len = Math.min(n, x.len - off);
    fn(x, off, len);
    n -= len;
    off = 0;
    x = x.next;
  }
}
