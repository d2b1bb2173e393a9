/*
 * sosend_auto.ts: when does loaning beat copying on *this* machine? (the `auto` send mode)
 *
 * NetBSD loans sends of at least a page (a fixed 4096); Linux's MSG_ZEROCOPY documentation suggests
 * ~10 KB. The honest answer depends on the machine, so the first `auto` send measures it: in a scratch
 * kernel, it times building and freeing a chain of each size by copy and by loan -- each followed by
 * the user's next write to the buffer, which after a loan takes a (cheap, copy-free) fault to get its
 * write access back -- in alternating rounds of ~2 ms windows, and picks the smallest size from which loaning is
 * cheaper at that size and every larger one (taking each mode's fastest round: a pause only adds time). The answer is kept
 * for the life of the process; an explicit `autoThreshold` option skips the measurement.
 */
import { Kernel, PAGE_SIZE, type Proc } from '@loanout/core';
import { mbufCopyin, mbufLoan, mFreem } from '@loanout/mbuf';

const SIZES = [1024, 2048, 4096, 8192, 16384, 32768, 65536];
/* if loaning never wins up to the largest size, send everything by copy below this */
const NEVER = 2 * SIZES[SIZES.length - 1];
const ROUNDS = 5;
/* each timing spans about 2 ms: in all, 7 sizes x 2 modes x 5 rounds, a quarter of a second */
const WINDOW_NS = 2_000_000;

let threshold: number | null = null;
let measuring: Promise<number> | null = null;

/** sosendAutoThreshold: the calibrated threshold in bytes (measured once, on first use) */
export function sosendAutoThreshold(): Promise<number> {
  if (threshold !== null) return Promise.resolve(threshold);
  measuring ??= calibrate().then((t) => {
    threshold = t;
    return t;
  });
  return measuring;
}

/** autoThresholdKnown: the threshold if already measured, else null */
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
    await timeSends(p, va, size, false);
    await timeSends(p, va, size, true);
  }
  for (let r = 0; r < ROUNDS; r++) {
    for (let i = 0; i < SIZES.length; i++) {
      /* alternate which goes first, so drift on a busy machine hits both alike */
      const loanFirst = (r + i) % 2 === 0;
      if (loanFirst) loan[i].push(await timeSends(p, va, SIZES[i], true));
      copy[i].push(await timeSends(p, va, SIZES[i], false));
      if (!loanFirst) loan[i].push(await timeSends(p, va, SIZES[i], true));
    }
  }
  p.exit();
  /* the fastest round of each: a garbage collection or a JIT pause only ever adds time */
  return crossover(SIZES.map((_, i) => Math.min(...copy[i]) / Math.min(...loan[i])));
}

/*
 * timeSends: ns per send of `size` bytes (build, free, then the user's next write to each page), over
 * a window of about WINDOW_NS so that one pause can't swamp it
 */
async function timeSends(p: Proc, va: number, size: number, loan: boolean): Promise<number> {
  const touch = Buffer.from([1]);
  const t0 = process.hrtime.bigint();
  let n = 0;
  let elapsed = 0;
  while (elapsed < WINDOW_NS) {
    for (let i = 0; i < 8; i++, n++) {
      const m = loan ? await mbufLoan(p, va, size) : await mbufCopyin(p, va, size);
      mFreem(m);
      for (let off = 0; off < size; off += PAGE_SIZE) await p.write(va + off, touch);
    }
    elapsed = Number(process.hrtime.bigint() - t0);
  }
  return elapsed / n;
}

/**
 * crossover: the smallest size from which loaning wins at that size and every larger one (a lone
 * noisy win below a loss doesn't count)
 * => speedups[i] is copy time / loan time at SIZES[i]
 */
export function crossover(speedups: number[]): number {
  let t = NEVER;
  for (let i = speedups.length - 1; i >= 0 && speedups[i] > 1; i--) t = SIZES[i];
  return t;
}
