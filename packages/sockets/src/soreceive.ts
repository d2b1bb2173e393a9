/*
 * soreceive.ts: moving received bytes from the receive area to a process -- by copy, or by page
 * transfer (the other half of Cranor's zero-copy design: loanout lends a process's pages *out* to the
 * network; transfer moves the network's pages *in*).
 *
 * node:net read the bytes into a chunk of the receive area: a run of wired kernel pages. Copying them
 * out is uiomove, through the process's MMU. Transferring them is cheaper for whole pages: when a page
 * of received bytes lines up with a page of the process's buffer -- same offset in the page, the whole
 * page wanted -- and the buffer is private anonymous memory (uvmTransferCheck), the kernel page itself
 * becomes the process's page at that address (uvmPageTransfer): no byte is copied. The receive area
 * takes a fresh run for the chunk before it gives any page away (RecvBuffer.give); the page the process
 * had there before is freed -- or, if the network still holds it on loan (an echo sending it back), it
 * stays an orphan for its borrower.
 *
 * What cannot move is copied, and counted by why, when it was whole pages that might have: the buffer
 * is unaligned with the bytes, not writable, a file's, shared, or no fresh run could be had. A receive
 * that moved pages leaves a partial page behind rather than copy it: the reads append to the chunk,
 * so that page fills up and moves whole next time; only a receive that finds no whole page at all
 * copies what is there (it must return something). And one that copied up to the end of a chunk stops
 * there if the next chunk's bytes would land mid-page in its buffer: the next receive, into a fresh
 * page-aligned buffer, starts aligned again.
 */
import { KernelError, PAGE_SIZE, type Proc, uvmPageTransfer, uvmTransferCheck } from '@loanout/core';
import type { RecvBuffer, RecvFallback } from './sockbuf.js';

/** how a recv moves bytes to the process: copy them, or move whole pages (transfer), or `auto` */
export type RecvMode = 'copy' | 'transfer' | 'auto';

/** `auto` moves runs of at least this many whole pages and copies shorter ones */
export const AUTO_TRANSFER_PAGES = 2;

/** the receive side's counters (a socket's, or the kernel's in mbufStats) */
export interface RecvCounts {
  /** bytes copied out */
  copiedBytes: number;
  /** bytes moved as whole pages */
  transferredBytes: number;
  /** pages moved */
  pagesTransferred: number;
  /** copies of bytes that could have moved as whole pages, by why not */
  fallbacks: Partial<Record<RecvFallback, number>>;
}

/** newRecvCounts: counters at zero */
export function newRecvCounts(): RecvCounts {
  return { copiedBytes: 0, transferredBytes: 0, pagesTransferred: 0, fallbacks: {} };
}

/** one receive's work: where, how, and whom to tell */
export interface Receive {
  /** the receive area */
  rcv: RecvBuffer;
  /** the process */
  proc: Proc;
  /** where in its memory */
  va: number;
  /** at most this many bytes */
  len: number;
  /** copy, transfer or auto */
  mode: RecvMode;
  /** counters to add to: the socket's and the kernel's */
  counts: RecvCounts[];
  /** a chunk became free: reading may resume */
  freed: () => void;
}

/**
 * receiveInto: move up to r.len queued bytes into the process (the receive area is not empty)
 * => returns the count moved (>= 1) -- at once when nothing had to sleep, else a Promise (a copy took
 *    a fault that sleeps: the receive area must stay as it is until it settles)
 * => a step that fails after some bytes moved returns their count, whatever the kernel error
 *    (EFAULT, EIO, ENOMEM, ESRCH: the next call meets it again, or not if it was transient); one
 *    that fails first throws it, nothing consumed
 */
export function receiveInto(r: Receive): number | Promise<number> {
  return receiveFrom(r, { done: 0, moved: false, fallbackSeen: false });
}

/* how far a receive has got */
interface Progress {
  done: number;
  /* whole pages moved */
  moved: boolean;
  /* a fallback counted (once a receive) */
  fallbackSeen: boolean;
}

/* receiveFrom: go on with a receive -- synchronously, until a copy has to sleep */
function receiveFrom(r: Receive, st: Progress): number | Promise<number> {
  try {
    while (st.done < r.len && !r.rcv.empty) {
      const step = transferStep(r, st.done);
      if (typeof step === 'number') {
        st.done += step;
        st.moved = true;
        continue;
      }
      /* pages moved: leave a partial page to fill up and move whole next time */
      if (st.moved && step.fallback === null && step.upTo < PAGE_SIZE) break;
      if (step.fallback !== null && !st.fallbackSeen) {
        st.fallbackSeen = true;
        countFallback(r, step.fallback);
      }
      const n = copyStep(r, st.done, step.upTo);
      if (typeof n !== 'number') {
        return n.then(
          (k) => (copiedUpTo(r, st, k) ? st.done : receiveFrom(r, st)),
          (err) => failedAt(st, err),
        );
      }
      if (copiedUpTo(r, st, n)) break;
    }
  } catch (err) {
    return failedAt(st, err);
  }
  return st.done;
}

/* copiedUpTo: n more bytes were copied; should the receive stop there? */
function copiedUpTo(r: Receive, st: Progress, n: number): boolean {
  st.done += n;
  return r.mode !== 'copy' && stopsMisaligned(r, st.done);
}

/*
 * failedAt: a step failed: after progress any kernel error (EFAULT, EIO, ENOMEM, ESRCH) returns the
 * count -- the bytes moved are consumed, and a recv that throws must have consumed nothing; else the error
 */
function failedAt(st: Progress, err: unknown): number {
  if (st.done === 0 || !(err instanceof KernelError)) throw err;
  return st.done;
}

/*
 * transferStep: move the whole pages at the head now, if they line up and may (a count of bytes,
 * possibly 0 to go round again); else say how much to copy instead, and why no transfer (a fallback
 * to count, or null when there was nothing transfer could have done)
 */
function transferStep(r: Receive, done: number): number | { upTo: number; fallback: RecvFallback | null } {
  const want = r.len - done;
  const avail = r.rcv.head(want)!.length;
  if (r.mode === 'copy') return { upTo: avail, fallback: null };
  const ua = r.va + done;
  const off = r.rcv.headOffset;
  if (ua % PAGE_SIZE !== off % PAGE_SIZE) {
    return { upTo: avail, fallback: avail >= PAGE_SIZE ? 'unaligned' : null };
  }
  /* lined up but mid-page: copy to the page boundary, then go round for the whole pages */
  if (off % PAGE_SIZE !== 0) return { upTo: Math.min(avail, PAGE_SIZE - (off % PAGE_SIZE)), fallback: null };
  const k = Math.floor(avail / PAGE_SIZE);
  if (k === 0 || (r.mode === 'auto' && k < AUTO_TRANSFER_PAGES)) return { upTo: avail, fallback: null };
  const why = transferPages(r, ua, k);
  return why === null ? k * PAGE_SIZE : { upTo: avail, fallback: why };
}

/* transferPages: give k whole pages at the head to the process at ua; null, or why it could not */
function transferPages(r: Receive, ua: number, k: number): RecvFallback | null {
  const why = uvmTransferCheck(r.proc.map, ua, k);
  if (why !== null) return why;
  if (!r.rcv.give(k, (pages) => uvmPageTransfer(r.proc.map, ua, pages))) return 'no-run';
  for (const c of r.counts) {
    c.transferredBytes += k * PAGE_SIZE;
    c.pagesTransferred += k;
  }
  r.freed();
  return null;
}

/*
 * copyStep: copy up to `upTo` bytes of the head into the process (uiomove: one move within RAM per
 * page); returns the count -- a Promise of it if a fault had to sleep
 */
function copyStep(r: Receive, done: number, upTo: number): number | Promise<number> {
  const src = r.rcv.head(upTo)!;
  const from = src.byteOffset;
  const n = src.length;
  const ram = r.proc.kernel.uvm.ram.bytes;
  const moving = r.proc.copyoutPhys(r.va + done, n, (at, d, len) => {
    ram.copyWithin(at, from + d, from + d + len);
  });
  if (moving === undefined) return consumed(r, n);
  return moving.then(() => consumed(r, n));
}

/* consumed: n bytes were copied out of the head: count them, and let reading go on if a chunk came free */
function consumed(r: Receive, n: number): number {
  for (const c of r.counts) c.copiedBytes += n;
  if (r.rcv.consume(n)) r.freed();
  return n;
}

/*
 * stopsMisaligned: after a copy, would the next bytes -- a new chunk, which starts a page -- land
 * mid-page in the buffer? Then stop here, so the next receive starts aligned
 */
function stopsMisaligned(r: Receive, done: number): boolean {
  return !r.rcv.empty && r.rcv.headOffset === 0 && (r.va + done) % PAGE_SIZE !== 0;
}

/* countFallback: whole pages that could have moved were copied, for `why` */
function countFallback(r: Receive, why: RecvFallback): void {
  for (const c of r.counts) c.fallbacks[why] = (c.fallbacks[why] ?? 0) + 1;
}
