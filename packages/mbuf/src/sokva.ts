/*
 * sokva.ts: the budget of kernel address space for loaned mappings (NetBSD's sokvaalloc/sokvafree,
 * which cap it at somaxkva, 16 MiB).
 *
 * Every loaned mbuf chain maps its pages into kernel space until it is freed. Without a cap, a peer
 * that stops reading would let senders pin all of RAM. A loan that would go over the budget waits,
 * first come first served, until frees bring usage down; it holds nothing while it waits (it reserves
 * before it loans), so waiting can't deadlock. An AbortSignal gives up the wait (EINTR).
 */
import { KernelError, KernelPanic } from '@loanout/core';

interface Waiter {
  npages: number;
  resolve: () => void;
  /* stop listening for an abort once the waiter is let in */
  forget: () => void;
}

export class KvaBudget {
  readonly limitPages: number;
  usedPages = 0;
  waits = 0;
  private readonly waiters: Waiter[] = [];

  /* => limitPages >= 1 (EINVAL) */
  constructor(limitPages: number) {
    if (!Number.isSafeInteger(limitPages) || limitPages < 1) {
      throw new KernelError('EINVAL', `sokva: bad budget of ${String(limitPages)} pages`);
    }
    this.limitPages = limitPages;
  }

  get waiting(): number {
    return this.waiters.length;
  }

  /*
   * tryReserve: take npages now if nobody is waiting ahead and they fit
   * => npages a positive integer (EINVAL)
   */
  tryReserve(npages: number): boolean {
    checkCount('sokvaalloc', npages);
    if (this.waiters.length > 0 || this.usedPages + npages > this.limitPages) return false;
    this.usedPages += npages;
    return true;
  }

  /*
   * reserve: take npages, waiting in line for frees if they don't fit now (sokvaalloc)
   * => throws EINVAL if npages is not a positive integer or exceeds the whole budget, EINTR if
   *    `signal` aborts the wait
   */
  reserve(npages: number, signal?: AbortSignal): Promise<void> {
    if (!Number.isSafeInteger(npages) || npages < 1) {
      return Promise.reject(new KernelError('EINVAL', `sokvaalloc: bad page count ${String(npages)}`));
    }
    if (npages > this.limitPages) {
      return Promise.reject(
        new KernelError(
          'EINVAL',
          `sokvaalloc: ${npages} pages exceed the ${this.limitPages}-page loan budget`,
        ),
      );
    }
    if (this.tryReserve(npages)) return Promise.resolve();
    if (signal?.aborted) return Promise.reject(new KernelError('EINTR', 'sokvaalloc: aborted'));
    this.waits++;
    return new Promise<void>((resolve, reject) => {
      const onAbort = () => {
        const i = this.waiters.indexOf(w);
        if (i < 0) return;
        this.waiters.splice(i, 1);
        reject(new KernelError('EINTR', 'sokvaalloc: aborted while waiting for kernel address space'));
        this.pump();
      };
      const w: Waiter = { npages, resolve, forget: () => signal?.removeEventListener('abort', onAbort) };
      this.waiters.push(w);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  /*
   * release: give npages back (sokvafree) and let waiters in, in order
   * => panics if that is more than is reserved (or not a count)
   */
  release(npages: number): void {
    if (!Number.isSafeInteger(npages) || npages < 0 || npages > this.usedPages) {
      throw new KernelPanic(`sokvafree: releasing ${String(npages)} pages of ${this.usedPages} reserved`);
    }
    this.usedPages -= npages;
    this.pump();
  }

  private pump(): void {
    while (this.waiters.length > 0 && this.usedPages + this.waiters[0].npages <= this.limitPages) {
      const w = this.waiters.shift()!;
      this.usedPages += w.npages;
      w.forget();
      w.resolve();
    }
  }
}

function checkCount(fn: string, npages: number): void {
  if (!Number.isSafeInteger(npages) || npages < 1) {
    throw new KernelError('EINVAL', `${fn}: bad page count ${String(npages)}`);
  }
}
