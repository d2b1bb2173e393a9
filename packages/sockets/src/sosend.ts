/*
 * sosend.ts: one send() call on its way to the host -- its place in line, the bytes it captured at
 * the call, and how much of it has gone (the state NetBSD's sosend keeps on its stack while it sleeps
 * in sbwait, kept here in a record because a send is a promise, not a sleeping thread).
 *
 * The bytes at the call. A process here is a JavaScript caller that may go on running while its send
 * is in progress -- as a second thread of a real process could -- and write the buffer it is sending.
 * A real kernel gives no answer for that thread; we give one: a send carries the bytes that were in
 * memory when send() was called. Whatever part of it cannot be handed to the host at once is *pinned*
 * copy-on-write at the call, by loaning its pages to anons (uvmLoanNow(..., 'anon'): A->A for the
 * process's anonymous pages, O->A for a file's or shared memory's, the zero page for memory never
 * touched). From then on a write by the process takes a copy-on-write fault and gets a new page; the
 * pinned anons keep the old bytes, and each chunk is later loaned (A->K) or copied from them. It is
 * Cranor's loanout used the other way round: to let the *sender* move on without copying. A pin costs
 * a reference per page, no copy and no kernel address space; a page the process then writes costs
 * one page copy (the fault), which is what a copy into a socket buffer would have cost up front.
 *
 * One case cannot be pinned at once: pages of a file or of shared memory that are not in RAM (or are
 * BUSY with I/O) when send() is called -- getting them would mean a sleep. Those pages (and only
 * those: the range is then pinned page by page) are read when their chunk is taken.
 */
import { type Anon, KernelError, PAGE_SIZE, type Proc, uvmLoanNow, uvmUnloanAnons } from '@loanout/core';

/** what a send() resolves with */
export interface SendResult {
  /** bytes sent */
  bytes: number;
  /** of which loaned (zero-copy) ... */
  loanedBytes: number;
  /** ... and copied (into mbuf clusters) */
  copiedBytes: number;
  /** settles when the host has every byte and every loan has ended; rejects if the connection fails */
  done: Promise<void>;
}

/**
 * SendError: a send failed after it was accepted (queued). `code` is why (EFAULT, ESRCH, EPIPE,
 * ECONNRESET, ECONNABORTED, ...); bytesSent bytes, from the start of the range, were handed to the
 * host first -- they are on the stream and cannot be taken back; `done` settles when those are in the
 * host and their loans have ended (it rejects if the connection fails first).
 *
 * @hideconstructor
 */
export class SendError extends KernelError {
  /** how many bytes, from the start of the range, went to the host before the failure */
  readonly bytesSent: number;
  /** settles when those bytes are in the host and their loans have ended */
  readonly done: Promise<void>;

  /** @internal a send that fails part-way makes one */
  constructor(cause: KernelError, bytesSent: number, len: number, done: Promise<void>) {
    const why = cause.message.replace(/^sosend: /, '');
    super(cause.code, `sosend: ${bytesSent} of ${len} bytes sent, then ${why}`, { cause });
    this.bytesSent = bytesSent;
    this.done = done;
  }
}

/** a chunk's source in pinned pages: the anons of the pages it spans, and where it starts in the first */
export interface PinnedSpan {
  /** the anons of the pages the chunk spans */
  anons: Anon[];
  /** where it starts in the first */
  off: number;
}

/** One send() in the socket's line: its range, what it pinned, and what has gone. */
export class SendOp {
  /** the sending process */
  readonly proc: Proc;
  /** the range's start */
  readonly va: number;
  /** the range's length */
  readonly len: number;
  /** chunks of at least this many bytes are loaned, smaller ones copied; null: `auto`, not yet measured */
  loanFrom: number | null;
  /** bytes handed to the host */
  sent = 0;
  /** bytes handed over by loan */
  loanedBytes = 0;
  /** bytes handed over by copy */
  copiedBytes = 0;
  /** each chunk's done */
  readonly dones: Promise<void>[] = [];
  /** the send's promise has settled */
  settled = false;
  /** a chunk is being built from the pins: a failure meanwhile must leave them until it is done */
  building = false;
  /** what send() returns */
  readonly promise: Promise<SendResult>;
  private resolve!: (r: SendResult) => void;
  private reject!: (e: Error) => void;
  /*
   * the pinned pages: anons[i] holds the page at pinVa + i pages, or null where that page could not be
   * pinned at the call (it needed I/O); those before `kept` are released
   */
  private anons: (Anon | null)[] | null = null;
  private pinVa = 0;
  private kept = 0;

  /** a send of [va, va + len), loaning chunks from loanFrom bytes */
  constructor(proc: Proc, va: number, len: number, loanFrom: number | null) {
    this.proc = proc;
    this.va = va;
    this.len = len;
    this.loanFrom = loanFrom;
    this.promise = new Promise<SendResult>((resolve, reject) => {
      this.resolve = resolve;
      this.reject = reject;
    });
  }

  /** pinned pages still held (for the socket's stats) */
  get pinnedPages(): number {
    if (this.anons === null) return 0;
    let n = 0;
    for (let i = this.kept; i < this.anons.length; i++) if (this.anons[i] !== null) n++;
    return n;
  }

  /**
   * pin: pin the bytes not yet sent copy-on-write, now (see the essay): the whole range at once, or,
   * if some page can't be had without a sleep, page by page -- every page that can be is pinned
   */
  pin(): void {
    const from = this.va + this.sent;
    const start = from - (from % PAGE_SIZE);
    const end = Math.ceil((this.va + this.len) / PAGE_SIZE) * PAGE_SIZE;
    this.anons = pinNow(this.proc, start, end - start) ?? this.pinEach(start, end);
    this.pinVa = start;
    this.kept = 0;
  }

  /* pinEach: pin page by page; a page that would need a sleep is left null (read when it goes) */
  private pinEach(start: number, end: number): (Anon | null)[] {
    const anons: (Anon | null)[] = new Array((end - start) / PAGE_SIZE);
    for (let a = start, i = 0; a < end; a += PAGE_SIZE, i++)
      anons[i] = pinNow(this.proc, a, PAGE_SIZE)?.[0] ?? null;
    return anons;
  }

  /**
   * chunkFrom: where the next bytes to send come from, and how many of the next `n` come from there:
   * pinned pages (span), or the process's memory (span null: not pinned, read when the chunk goes)
   * => the anons stay the op's: release them with unpinBefore / unpinAll
   */
  chunkFrom(n: number): { n: number; span: PinnedSpan | null } {
    const from = this.va + this.sent;
    if (this.anons === null) return { n, span: null };
    const first = Math.floor((from - this.pinVa) / PAGE_SIZE);
    const pinned = this.anons[first] !== null;
    let last = first + 1;
    const end = Math.ceil((from + n - this.pinVa) / PAGE_SIZE);
    while (last < end && (this.anons[last] !== null) === pinned) last++;
    const cut = Math.min(n, this.pinVa + last * PAGE_SIZE - from);
    if (!pinned) return { n: cut, span: null };
    return { n: cut, span: { anons: this.anons.slice(first, last) as Anon[], off: from % PAGE_SIZE } };
  }

  /** unpinBefore: release the pinned pages that hold only bytes before va + `upTo` (already taken) */
  unpinBefore(upTo: number): void {
    if (this.anons === null) return;
    const k = Math.min(Math.floor((this.va + upTo - this.pinVa) / PAGE_SIZE), this.anons.length);
    if (k <= this.kept) return;
    unpin(this.anons, this.kept, k);
    this.kept = k;
  }

  /** unpinAll: release every pin still held */
  unpinAll(): void {
    if (this.anons === null) return;
    unpin(this.anons, this.kept, this.anons.length);
    this.anons = null;
  }

  /** finish: every byte went to the host; the pins go, the send resolves */
  finish(): void {
    this.unpinAll();
    this.settled = true;
    const { sent: bytes, loanedBytes, copiedBytes } = this;
    this.resolve({ bytes, loanedBytes, copiedBytes, done: allDone(this.dones) });
  }

  /** fail: the send ends with `err` after bytesSent = sent bytes; the pins go (once no chunk is being built from them) */
  fail(err: KernelError): void {
    if (!this.building) this.unpinAll();
    this.settled = true;
    this.reject(new SendError(err, this.sent, this.len, allDone(this.dones)));
  }
}

/* pinNow: loan [start, start + len) to anons now, or null if that would need a sleep (or can't be done) */
function pinNow(proc: Proc, start: number, len: number): Anon[] | null {
  try {
    return uvmLoanNow(proc.map, start, len, 'anon');
  } catch {
    return null;
  }
}

/* unpin: end the loans to anons of anons[from, to) that were taken */
function unpin(anons: (Anon | null)[], from: number, to: number): void {
  const held: Anon[] = [];
  for (let i = from; i < to; i++) if (anons[i] !== null) held.push(anons[i]!);
  if (held.length > 0) uvmUnloanAnons(held);
}

/** allDone: one completion for a send's chunks (unobserved, it rejects quietly) */
export function allDone(dones: Promise<void>[]): Promise<void> {
  const done =
    dones.length === 1
      ? dones[0]
      : dones.length === 0
        ? Promise.resolve()
        : Promise.all(dones).then(() => undefined);
  done.catch(() => undefined);
  return done;
}
