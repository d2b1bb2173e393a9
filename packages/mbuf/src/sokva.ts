/*
 * sokva.ts: the budget of kernel address space for loaned mappings (NetBSD's sokvaalloc/sokvafree,
 * which cap it at somaxkva, 16 MiB).
 *
 * Every loaned mbuf chain maps its pages into kernel space until it is freed. Without a cap, a peer
 * that stops reading would let senders pin all of RAM. A loan that would go over the budget waits,
 * first come first served, until frees bring usage down; it holds nothing while it waits (it reserves
 * before it loans), so waiting can't deadlock. An AbortSignal gives up the wait (EINTR).
 */
import { KernelError } from '@loanout/core';

interface Waiter {
  npages: number;
  resolve: () => void;
  reject: (err: Error) => void;
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

  /* tryReserve: take npages now if nobody is waiting ahead and they fit */
  tryReserve(npages: number): boolean {
    if (this.waiters.length > 0 || this.usedPages + npages > this.limitPages) return false;
    this.usedPages += npages;
    return true;
  }

  /*
   * reserve: take npages, waiting in line for frees if they don't fit now (sokvaalloc)
   * => throws EINVAL if npages exceeds the whole budget, EINTR if `signal` aborts the wait
   */
  reserve(npages: number, signal?: AbortSignal): Promise<void> {
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
      const w: Waiter = { npages, resolve, reject };
      this.waiters.push(w);
      signal?.addEventListener(
        'abort',
        () => {
          const i = this.waiters.indexOf(w);
          if (i < 0) return;
          this.waiters.splice(i, 1);
          reject(new KernelError('EINTR', 'sokvaalloc: aborted while waiting for kernel address space'));
          this.pump();
        },
        { once: true },
      );
    });
  }

  /* release: give npages back (sokvafree) and let waiters in, in order */
  release(npages: number): void {
    this.usedPages -= npages;
    if (this.usedPages < 0) throw new KernelError('EINVAL', 'sokvafree: released more than reserved');
    this.pump();
  }

  private pump(): void {
    while (this.waiters.length > 0 && this.usedPages + this.waiters[0].npages <= this.limitPages) {
      const w = this.waiters.shift()!;
      this.usedPages += w.npages;
      w.resolve();
    }
  }
}
