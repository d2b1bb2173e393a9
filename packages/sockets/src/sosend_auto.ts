/*
 * sosend_auto.ts: when does loaning beat copying on *this* machine? (the `auto` send mode)
 *
 * NetBSD loans sends of at least a page (a fixed 4096); Linux's MSG_ZEROCOPY documentation suggests
 * ~10 KB. The honest answer depends on the machine, so the first `auto` send measures it: in a scratch
 * kernel, it times building and freeing a chain of each size by copy and by loan -- each followed by
 * the user's next write to the buffer, which after a loan takes a (cheap, copy-free) fault to get its
 * write access back -- in alternating rounds, and picks the smallest size from which loaning is
 * cheaper at that size and every larger one (medians over the rounds, so one noisy round can't move it). The answer is kept
 * for the life of the process; an explicit `autoThreshold` option skips the measurement.
 */
import { Kernel, PAGE_SIZE, type Proc } from '@loanout/core';
import { mbufCopyin, mbufLoan, mFreem } from '@loanout/mbuf';

const SIZES = [1024, 2048, 4096, 8192, 16384, 32768, 65536];
/* if loaning never wins up to the largest size, send everything by copy below this */
const NEVER = 2 * SIZES[SIZES.length - 1];
const ROUNDS = 5;
const ITERS = 40;

let threshold: number | null = null;
let measuring: Promise<number> | null = null;

/* sosendAutoThreshold: the calibrated threshold in bytes (measured once, on first use) */
export function sosendAutoThreshold(): Promise<number> {
  if (threshold !== null) return Promise.resolve(threshold);
  measuring ??= calibrate().then((t) => {
    threshold = t;
    return t;
  });
  return measuring;
}

/* autoThresholdKnown: the threshold if already measured, else null */
export function autoThresholdKnown(): number | null {
  return threshold;
}

async function calibrate(): Promise<number> {
  const k = new Kernel({ physPages: 1024, swapPages: 0 });
  const p = k.createProcess();
  const len = SIZES[SIZES.length - 1];
  const va = p.mmap(len);
  await p.write(va, Buffer.alloc(len, 0x5a));
  const copy: number[][] = SIZES.map(() => []);
  const loan: number[][] = SIZES.map(() => []);
  for (const size of SIZES) {
    await timeSends(p, va, size, false, 20);
    await timeSends(p, va, size, true, 20);
  }
  for (let r = 0; r < ROUNDS; r++) {
    for (let i = 0; i < SIZES.length; i++) {
      /* alternate which goes first, so drift on a busy machine hits both alike */
      const loanFirst = (r + i) % 2 === 0;
      if (loanFirst) loan[i].push(await timeSends(p, va, SIZES[i], true, ITERS));
      copy[i].push(await timeSends(p, va, SIZES[i], false, ITERS));
      if (!loanFirst) loan[i].push(await timeSends(p, va, SIZES[i], true, ITERS));
    }
  }
  p.exit();
  return crossover(SIZES.map((_, i) => median(copy[i]) / median(loan[i])));
}

/* timeSends: ns per send of `size` bytes (build, free, then the user's next write to each page) */
async function timeSends(p: Proc, va: number, size: number, loan: boolean, iters: number): Promise<number> {
  const touch = Buffer.from([1]);
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < iters; i++) {
    const m = loan ? await mbufLoan(p, va, size) : await mbufCopyin(p, va, size);
    mFreem(m);
    for (let off = 0; off < size; off += PAGE_SIZE) await p.write(va + off, touch);
  }
  return Number(process.hrtime.bigint() - t0) / iters;
}

/*
 * crossover: the smallest size from which loaning wins at that size and every larger one (a lone
 * noisy win below a loss doesn't count)
 * => speedups[i] is copy time / loan time at SIZES[i]
 */
export function crossover(speedups: number[]): number {
  let t = NEVER;
  for (let i = speedups.length - 1; i >= 0 && speedups[i] > 1; i--) t = SIZES[i];
  return t;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[s.length >> 1];
}
