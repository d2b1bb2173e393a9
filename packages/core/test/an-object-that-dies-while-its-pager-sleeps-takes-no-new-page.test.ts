/*
 * An object's last mapping can go (munmap, exit) while someone sleeps in its pager: reading a page in,
 * waiting for a BUSY page, or waiting for memory. The object then frees its pages (a BUSY one is
 * RELEASED for its I/O's owner) and its swap, and is gone. A sleeper that wakes must not bring a new
 * page into it: nothing would ever free that page again -- it stays allocated, on a paging queue,
 * owned by a dead object, and the kernel has one page less for good.
 *
 * Here a page of shared anonymous memory is out on swap; one borrower (a loan, or the process's own
 * fault) reads it back in, a second sleeps on the page while it is BUSY, and the mapping goes in the
 * middle of the read.
 */
import { describe, expect, it } from 'vitest';
import { Kernel, PAGE_SIZE, type Proc, uvmLoan } from '../src/index.js';
import { expectAllFree, fill, hog, hookOnce } from './loan-helpers.js';

const P = PAGE_SIZE;

/* a process with one page of shared anonymous memory, written and then pushed out to swap */
async function sharedPageOnSwap(k: Kernel): Promise<{ p: Proc; va: number }> {
  const p = k.createProcess();
  const va = p.mmap(P, { shared: true });
  await p.write(va, fill(0x5a));
  const obj = p.map.lookup(va)!.object!;
  const h = await hog(k, k.stats().physPages * 2);
  await k.idle();
  expect(obj.resident).toBe(0);
  h.exit();
  await k.idle();
  return { p, va };
}

type Sleeper = 'loan' | 'fault';
type Death = 'munmap' | 'exit';

function touch(p: Proc, va: number, how: Sleeper): Promise<unknown> {
  return how === 'loan' ? uvmLoan(p.map, va, P, 'kernel') : p.read(va, P);
}

describe('an object that dies while its pager sleeps takes no new page', () => {
  for (const first of ['loan', 'fault'] as const satisfies Sleeper[]) {
    for (const second of ['loan', 'fault'] as const satisfies Sleeper[]) {
      for (const death of ['munmap', 'exit'] as const satisfies Death[]) {
        it(`a ${first} reads the page in, a ${second} waits for it, ${death} in the middle: both fail, no page is left`, async () => {
          const k = new Kernel({ physPages: 16, swapPages: 64 });
          const { p, va } = await sharedPageOnSwap(k);
          let waiting: Promise<unknown> | null = null;
          const hook = hookOnce(
            k,
            (ev) => ev.kind === 'swapin',
            () => {
              /* the page is BUSY for the first sleeper's read: the second sleeps on it */
              waiting = touch(p, va, second);
              if (death === 'munmap') p.munmap(va, P);
              else p.exit();
            },
          );
          const [a] = await Promise.allSettled([touch(p, va, first)]);
          expect(hook.fired()).toBe(1);
          const [b] = await Promise.allSettled([waiting!]);
          /* a loan fails EFAULT; a process's read, EFAULT after munmap and ESRCH after its exit */
          const want = (how: Sleeper) => (how === 'fault' && death === 'exit' ? 'ESRCH' : 'EFAULT');
          expect(a).toMatchObject({ status: 'rejected', reason: { code: want(first) } });
          expect(b).toMatchObject({ status: 'rejected', reason: { code: want(second) } });
          await k.idle();
          k.checkInvariants();
          expect(k.stats().swapUsed).toBe(0);
          await expectAllFree(k);
        });
      }
    }
  }
});
