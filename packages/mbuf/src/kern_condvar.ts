/*
 * kern_condvar.ts: interruptible waits in line -- what NetBSD does with a condvar and cv_wait_sig, for
 * the two places here that wait for a count of something under a cap (the loan budget's pages, the
 * cluster pool's items).
 *
 * Sleepers are let in first come first served: the first in line goes in when its count fits, and
 * nobody passes it. Our signal is an AbortSignal, with Node's convention for AbortSignal options:
 * anything else is refused (EINVAL) before anything is queued or taken, and a signal that has already
 * aborted refuses the call at once (EINTR), even a call that would not have had to wait. An abort while
 * waiting takes the sleeper out of line (EINTR) and lets in those behind it that now fit.
 */
import { KernelError } from '@loanout/core';

/**
 * checkSignal: an optional AbortSignal that has not aborted
 * => throws EINVAL if signal is neither undefined nor an AbortSignal, EINTR if it has aborted
 */
export function checkSignal(fn: string, signal: unknown): asserts signal is AbortSignal | undefined {
  if (signal === undefined) return;
  if (!(signal instanceof AbortSignal)) {
    throw new KernelError('EINVAL', `${fn}: signal must be an AbortSignal`);
  }
  if (signal.aborted) throw new KernelError('EINTR', `${fn}: aborted`, { cause: signal.reason });
}

interface Sleeper {
  n: number;
  /* let in: stop listening for an abort, then resolve */
  wake: () => void;
}

/** WaitLine: takers waiting, first come first served, for their count to fit under a cap (see above). */
export class WaitLine {
  private readonly sleepers: Sleeper[] = [];
  /* would n more fit under the cap now? */
  private readonly fits: (n: number) => boolean;
  /* count n as taken */
  private readonly admit: (n: number) => void;

  /** fits: would n more fit now; admit: count n as taken */
  constructor(fits: (n: number) => boolean, admit: (n: number) => void) {
    this.fits = fits;
    this.admit = admit;
  }

  /** takers waiting */
  get length(): number {
    return this.sleepers.length;
  }

  /**
   * sleep: wait in line until our n fit; they are admitted (counted as taken) before we resume
   * => the caller has checked the signal (checkSignal); throws EINTR if it aborts before our turn,
   *    and then nothing is taken
   */
  sleep(fn: string, what: string, n: number, signal: AbortSignal | undefined): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const onAbort = () => {
        const i = this.sleepers.indexOf(s);
        if (i < 0) return;
        this.sleepers.splice(i, 1);
        reject(
          new KernelError('EINTR', `${fn}: aborted while waiting for ${what}`, { cause: signal?.reason }),
        );
        this.pump();
      };
      const s: Sleeper = {
        n,
        wake: () => {
          signal?.removeEventListener('abort', onAbort);
          resolve();
        },
      };
      this.sleepers.push(s);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  /** pump: let sleepers in, in order, while the first one's count fits (cv_broadcast, in order) */
  pump(): void {
    while (this.sleepers.length > 0 && this.fits(this.sleepers[0].n)) {
      const s = this.sleepers.shift()!;
      this.admit(s.n);
      s.wake();
    }
  }
}
