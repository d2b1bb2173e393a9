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
 * Every read of the host's starts a page of the receive area (sockbuf.ts), so the last page of a read
 * is usually partly filled, and closed: nothing more will be read into it. By default its bytes are
 * copied (the process's page keeps the rest of its bytes, as read(2) promises). With
 * `tail: 'zero-fill'` the page itself moves too, the rest of it zeroed: the process gives up what its
 * page held after the received bytes, and no byte is copied -- what an echo or a proxy wants, whose
 * buffer holds nothing else. (Linux's TCP_ZEROCOPY_RECEIVE maps only whole pages and leaves the rest
 * to a copying read; NetBSD has no page transfer on receive: this is our extension of Cranor's.)
 *
 * What cannot move is copied, and counted by why, when it was whole pages that might have: the buffer
 * is unaligned with the bytes, not writable, a file's, shared, or no fresh run could be had. A receive
 * that reaches the end of a read stops there if the next read's bytes -- which start a page -- would
 * land mid-page in its buffer and could have moved (a read too short to move is copied on): the next
 * receive, into a page-aligned buffer, starts aligned again.
 */
import { KernelError, PAGE_SIZE, type Proc, uvmPageTransfer, uvmTransferCheck } from '@loanout/core';
import type { RecvBuffer, RecvFallback } from './sockbuf.js';

/** how a recv moves bytes to the process: copy them, or move whole pages (transfer), or `auto` */
export type RecvMode = 'copy' | 'transfer' | 'auto';

/**
 * what a transfer does with the last page of a read, partly filled: copy its bytes in (`copy`), or move
 * the page too, the rest of it zeroed (`zero-fill`)
 */
export type RecvTail = 'copy' | 'zero-fill';

/** how one recv moves its bytes: its mode and what it does with a partly filled last page */
export interface RecvHow {
  mode: RecvMode;
  tail: RecvTail;
}

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
  /** bytes zeroed after the received ones in partly filled pages that moved (tail 'zero-fill') */
  zeroFilledBytes: number;
  /** copies of bytes that could have moved as whole pages, by why not */
  fallbacks: Partial<Record<RecvFallback, number>>;
}

/** newRecvCounts: counters at zero */
export function newRecvCounts(): RecvCounts {
  return { copiedBytes: 0, transferredBytes: 0, pagesTransferred: 0, zeroFilledBytes: 0, fallbacks: {} };
}

/** one receive's work: where, how (mode and tail), and whom to tell */
export interface Receive extends RecvHow {
  /** the receive area */
  rcv: RecvBuffer;
  /** the process */
  proc: Proc;
  /** where in its memory */
  va: number;
  /** at most this many bytes */
  len: number;
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
  return receiveFrom(r, { done: 0, fallbackSeen: false });
}

/* how far a receive has got */
interface Progress {
  done: number;
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
        if (stopsMisaligned(r, st.done)) break;
        continue;
      }
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
 * transferStep: move the pages at the head now, if they line up and may -- whole pages, and a read's
 * partly filled last page with tail 'zero-fill' (a count of bytes); else say how much to copy
 * instead, and why no transfer (a fallback to count, or null when there was nothing transfer could
 * have done)
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
  const whole = Math.floor(avail / PAGE_SIZE);
  const tail = tailToMove(r, avail, want);
  if (whole + tail === 0 || (r.mode === 'auto' && whole < AUTO_TRANSFER_PAGES)) {
    return { upTo: avail, fallback: null };
  }
  const why = transferPages(r, ua, whole, tail);
  if (why === null) return whole * PAGE_SIZE + tail;
  /* the partly filled page could not go (its page of the buffer refuses): the whole ones before it may */
  if (tail > 0 && whole > 0 && transferPages(r, ua, whole, 0) === null) return whole * PAGE_SIZE;
  return { upTo: avail, fallback: why };
}

/*
 * tailToMove: the bytes of a partly filled last page that may move with the whole pages before it: in
 * transfer mode with tail 'zero-fill', when they end a read (the page is closed) and the buffer holds
 * the whole page (its rest is zeroed); else 0
 */
function tailToMove(r: Receive, avail: number, want: number): number {
  const rem = avail % PAGE_SIZE;
  if (rem === 0 || r.mode !== 'transfer' || r.tail !== 'zero-fill') return 0;
  return avail === r.rcv.headRun && want >= avail - rem + PAGE_SIZE ? rem : 0;
}

/*
 * transferPages: give the whole pages at the head, and a partly filled one after them of `tail`
 * bytes, to the process at ua; null, or why it could not
 */
function transferPages(r: Receive, ua: number, whole: number, tail: number): RecvFallback | null {
  const k = whole + (tail > 0 ? 1 : 0);
  const why = uvmTransferCheck(r.proc.map, ua, k);
  if (why !== null) return why;
  if (!r.rcv.give(k, (pages) => uvmPageTransfer(r.proc.map, ua, pages), tail)) return 'no-run';
  for (const c of r.counts) {
    c.transferredBytes += whole * PAGE_SIZE + tail;
    c.pagesTransferred += k;
    if (tail > 0) c.zeroFilledBytes += PAGE_SIZE - tail;
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
 * stopsMisaligned: would the next bytes -- a new read's, which start a page -- land mid-page in the
 * buffer, when lined up they could have moved (a whole page; two for auto; any partly filled page
 * with tail 'zero-fill')? Then stop here, so the next receive starts aligned. A read too short to move
 * anyway is copied on: stopping for it would only make more receives
 */
function stopsMisaligned(r: Receive, done: number): boolean {
  if (r.rcv.empty || r.rcv.headOffset % PAGE_SIZE !== 0 || (r.va + done) % PAGE_SIZE === 0) return false;
  if (r.mode === 'auto') return r.rcv.headRun >= AUTO_TRANSFER_PAGES * PAGE_SIZE;
  return r.tail === 'zero-fill' || r.rcv.headRun >= PAGE_SIZE;
}

/* countFallback: whole pages that could have moved were copied, for `why` */
function countFallback(r: Receive, why: RecvFallback): void {
  for (const c of r.counts) c.fallbacks[why] = (c.fallbacks[why] ?? 0) + 1;
}
