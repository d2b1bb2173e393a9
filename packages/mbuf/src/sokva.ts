/*
 * sokva.ts: the budget of kernel address space for loaned mappings (NetBSD's sokvaalloc/sokvafree,
 * which cap it at somaxkva, 16 MiB).
 *
 * Every loaned mbuf chain maps its pages into kernel space until it is freed. Without a cap, a peer
 * that stops reading would let senders pin all of RAM. A loan that would go over the budget waits,
 * first come first served, until frees bring usage down; it holds nothing while it waits (it reserves
 * before it loans), so waiting can't deadlock. An AbortSignal gives up the wait (EINTR); a bad signal is
 * refused before anything is queued, so a release never meets one (kern_condvar.ts).
 */
import { KernelError, KernelPanic } from '@loanout/core';
import { checkSignal, WaitLine } from './kern_condvar.js';

/**
 * KvaBudget: the kernel address space loaned mbufs may map at once (NetBSD's somaxkva), with a FIFO line of
 * loans waiting for it.
 */
export class KvaBudget {
  /** the budget, in pages */
  readonly limitPages: number;
  /** pages reserved now */
  usedPages = 0;
  /** reservations that had to wait */
  waits = 0;
  /** called after every release (the mbuf system's release broadcast), or null */
  onRelease: (() => void) | null = null;
  private readonly line = new WaitLine(
    (n) => this.usedPages + n <= this.limitPages,
    (n) => {
      this.usedPages += n;
    },
  );

  /** => limitPages >= 1 (EINVAL) */
  constructor(limitPages: number) {
    if (!Number.isSafeInteger(limitPages) || limitPages < 1) {
      throw new KernelError('EINVAL', `sokva: bad budget of ${String(limitPages)} pages`);
    }
    this.limitPages = limitPages;
  }

  /** reservations waiting now */
  get waiting(): number {
    return this.line.length;
  }

  /**
   * tryReserve: take npages now if nobody is waiting ahead and they fit
   * => npages a positive integer (EINVAL)
   */
  tryReserve(npages: number): boolean {
    checkCount('sokvaalloc', npages);
    if (this.line.length > 0 || this.usedPages + npages > this.limitPages) return false;
    this.usedPages += npages;
    return true;
  }

  /**
   * reserve: take npages, waiting in line for frees if they don't fit now (sokvaalloc)
   * => throws EINVAL if npages is not a positive integer or exceeds the whole budget, or signal is
   *    neither undefined nor an AbortSignal; EINTR if signal has already aborted (at once, even when
   *    the pages fit) or aborts the wait; then nothing is reserved or left waiting
   */
  reserve(npages: number, signal?: AbortSignal): Promise<void> {
    try {
      checkCount('sokvaalloc', npages);
      if (npages > this.limitPages) {
        throw new KernelError(
          'EINVAL',
          `sokvaalloc: ${npages} pages exceed the ${this.limitPages}-page loan budget`,
        );
      }
      checkSignal('sokvaalloc', signal);
    } catch (err) {
      return Promise.reject(err);
    }
    if (this.tryReserve(npages)) return Promise.resolve();
    this.waits++;
    return this.line.sleep('sokvaalloc', 'kernel address space', npages, signal);
  }

  /**
   * release: give npages back (sokvafree) and let waiters in, in order
   * => panics if that is more than is reserved (or not a count)
   */
  release(npages: number): void {
    if (!Number.isSafeInteger(npages) || npages < 0 || npages > this.usedPages) {
      throw new KernelPanic(`sokvafree: releasing ${String(npages)} pages of ${this.usedPages} reserved`);
    }
    this.usedPages -= npages;
    this.line.pump();
    this.onRelease?.();
  }
}

function checkCount(fn: string, npages: number): void {
  if (!Number.isSafeInteger(npages) || npages < 1) {
    throw new KernelError('EINVAL', `${fn}: bad page count ${String(npages)}`);
  }
}
