/*
 * uipc_socket.ts: a socket of the toy kernel over a real TCP connection (NetBSD's kern/uipc_socket.c:
 * sosend, soreceive, soclose).
 *
 * sosend (Socket.send) turns user memory into mbufs -- by copy into clusters, by page loan, or by
 * whichever the `auto` threshold picks -- and hands their views to node:net as one corked batch, so
 * a chain goes to the host in one writev. Node reads those bytes when the host socket has room: often
 * inside write() itself (uv_try_write), else later, when its write callback fires. So the mbufs (and
 * the loans under them) live until the host has the bytes -- as write() returns if node:net then holds
 * none of ours (its callback would only come on the next tick), else until that callback: then they
 * are freed and the chunk's `done` settles.
 *
 * Every send takes its place in line, and captures its bytes, *at the call* (sosend.ts): when nothing
 * is ahead of it and it fits the send buffer, its chain is built and handed to the host before send()
 * returns; whatever cannot go at once is pinned copy-on-write and goes later, chunk by chunk, in call
 * order (the pump). A chunk waits only for room in this socket's own send buffer: when the kernel's
 * shared loan budget is short a loan falls back to a copy (as NetBSD's sosend copies when sosend_loan
 * fails), and when the shared cluster pool is short too, a socket with nothing in flight may still take
 * one chunk past the pool's limit (an overdraft) -- so sockets whose peers never read, holding every
 * shared page, cannot starve one whose peer does.
 *
 * Waits end: a send or a receive sleeping on the network wakes when its process exits (ESRCH) or its
 * range is unmapped or made inaccessible (EFAULT) -- the process is watched while it sleeps
 * (Proc.watch) -- and a send that fails part-way says how many bytes went (SendError.bytesSent), as
 * NetBSD's sosend returns an error after partial data.
 *
 * soreceive (Socket.recv) copies bytes the host read into the receive area out to the user.
 *
 * soclose (Socket.close) finishes sending, half-closes, and keeps reading -- and discarding -- until the
 * peer's FIN: a socket closed with unread data in it is answered with a reset, which can make the peer's
 * host drop bytes it had not yet handed to the peer's program. Only then does it let go.
 */
import type net from 'node:net';
import { checkUserBuffer, type Kernel, KernelError, option, PAGE_SIZE, Proc, Prot } from '@loanout/core';
import {
  type Mbuf,
  MCLBYTES,
  mBuffers,
  mbufCopyin,
  mbufCopyinAnons,
  mbufCopyinNow,
  mbufLoan,
  mbufLoanAnons,
  mbufLoanNow,
  mbufSystem,
  mFreem,
} from '@loanout/mbuf';
import { endWasReset, kernelErrorFrom, type OnRead, resetError, resetTcp } from './net_glue.js';
import { type RecvBuffer, type RecvFallback, SendBuffer } from './sockbuf.js';
import { checkOptions, DEFAULT_HIWAT, MAX_LINGER_MS } from './sockopt.js';
import {
  newRecvCounts,
  type RecvCounts,
  type RecvHow,
  type RecvMode,
  type RecvTail,
  receiveInto,
} from './soreceive.js';
import { SendOp, type SendResult } from './sosend.js';
import { autoThresholdKnown, sosendAutoThreshold } from './sosend_auto.js';

export { SendError, type SendResult } from './sosend.js';

/**
 * How a send carries the bytes: copied into clusters, loaned (the pages themselves, no copy), or auto (loans
 * from a measured size up, copies below it).
 */
export type SendMode = 'copy' | 'loan' | 'auto';

/** Options of a socket (sockConnect, sockListen, createEchoServer), checked when the call is made. */
export interface SocketOptions {
  /** send buffer high-water mark in bytes (a positive integer, default 1 MiB) */
  sendHighWater?: number;
  /** receive area: chunks of this many bytes (page multiple, default 32 KiB) ... */
  recvChunkBytes?: number;
  /** ... and this many of them (at least 2; default 4); the area can be at most the kernel's RAM */
  recvChunks?: number;
  /** `auto` loans sends of at least this many bytes (an integer >= 0; default: calibrated on this machine) */
  autoThreshold?: number;
}

/** Options of so.send. */
export interface SendOptions {
  /** how to carry the bytes; default 'auto' */
  mode?: SendMode;
}

/** Options of so.recv. */
export interface RecvOptions {
  /**
   * 'copy' (default): copy the bytes out; 'transfer': move whole pages of received bytes into the
   * buffer where they line up with its pages and it is private anonymous memory (page transfer), copy
   * the rest; 'auto': as transfer, for runs of at least two whole pages
   */
  mode?: RecvMode;
  /**
   * what a transfer does with the last page of a read of the host's when it is partly filled:
   * 'copy' (default) copies its bytes in, and the buffer's page keeps the rest of what it held;
   * 'zero-fill' moves that page too, the rest of it zeroed -- the buffer's page then holds zeros after
   * the received bytes, up to the page's end (within the buffer: a page that reaches past va + len is
   * copied into). With mode 'transfer' only; no effect with 'copy' or 'auto'
   */
  tail?: RecvTail;
}

/** Options of so.close. */
export interface CloseOptions {
  /**
   * how long to wait for pending sends to go out and for the peer to close its side, in ms (default
   * 10000; 0 = reset now; at most 2^31 - 1, the longest a timer can wait)
   */
  linger?: number;
}

/** what a socket has done so far (its part of NetBSD's netstat -s) */
export interface SocketStats {
  /** bytes handed to the host, and how: loaned, copied; copies that had wanted to be loans */
  bytesSent: number;
  /** bytes sent by loan */
  loanedBytes: number;
  /** bytes sent by copy */
  copiedBytes: number;
  /** bytes that were to be loaned and were copied, for want of loan budget */
  loanFallbackBytes: number;
  /** sends accepted and not yet all handed to the host, and the pages they hold pinned */
  pendingSends: number;
  /** pages pinned copy-on-write for pending sends */
  pinnedPages: number;
  /** bytes handed to the host and not yet taken by it */
  sendQueued: number;
  /** bytes received and read by recv: copied out, or moved as whole pages (page transfer) */
  bytesReceived: number;
  /** bytes received by copy */
  receivedByCopy: number;
  /** bytes received by page transfer */
  receivedByTransfer: number;
  /** pages received by page transfer */
  pagesTransferred: number;
  /** bytes zeroed after the received ones in partly filled pages that moved (recv tail 'zero-fill') */
  transferZeroFilled: number;
  /** receives that copied whole pages they could not transfer, by why (unaligned, shared, no-run, ...) */
  transferFallbacks: Partial<Record<RecvFallback, number>>;
}

/* the smallest chunk worth sending into a partly full send buffer (NetBSD: sb_lowat) */
const SB_LOWAT = 32 * 1024;
/* the chunk a socket with nothing in flight may take past the cluster pool's limit */
const OVERDRAFT_BYTES = 64 * 1024;

/* one chunk of a send, in flight to the host */
interface InFlight {
  m: Mbuf | null;
  bytes: number;
  loaned: boolean;
  resolve: () => void;
  reject: (err: Error) => void;
}

/* a recv waiting for the receive side */
interface RecvWaiter {
  proc: Proc;
  va: number;
  len: number;
  enter: () => void;
  fail: (err: KernelError) => void;
}

/* a chunk built and ready to go */
interface Built {
  m: Mbuf;
  n: number;
  loaned: boolean;
  fallback: boolean;
}

/**
 * Socket: a TCP connection of the loanout kernel (NetBSD's struct socket): send user memory by copy, loan or
 * auto, receive into it by copy or page transfer. Made by sockConnect or a listener, never by `new`.
 *
 * @hideconstructor
 */
export class Socket {
  /** the kernel whose memory it sends and receives */
  readonly kernel: Kernel;
  /** the peer's address */
  readonly remoteAddress: string;
  /** the peer's port */
  readonly remotePort: number;
  /** the local port */
  readonly localPort: number;
  private readonly tcp: net.Socket;
  private readonly snd: SendBuffer;
  private readonly rcv: RecvBuffer;
  private readonly inflight = new Set<InFlight>();
  /* the chunks written, in write order, that node:net has not called back yet */
  private readonly written: InFlight[] = [];
  /*
   * onWritten: the write callback of every chunk. node:net calls writes back in order, so each call is
   * the oldest chunk's (complete() skips one done already, hostTookAll). One function for all: node:net
   * then counts the callbacks of writes the host took at once instead of queueing a tick for each --
   * a loop of sends that never waits would otherwise pile up one tick and one closure per send.
   */
  private readonly onWritten = (err?: Error | null): void => {
    const f = this.written.shift();
    if (f !== undefined) this.complete(f, err ?? null);
  };
  /* chunks in flight that are loans (they hold loan budget this socket will get back) */
  private loansInFlight = 0;
  private readonly autoThreshold: number | undefined;
  private state: 'open' | 'closing' | 'closed' = 'open';
  /* the connection's error (a reset...), for whoever sends or receives next */
  private error: KernelError | null = null;
  /* why pending sends fail (close with linger 0, linger expired, destroy): set once */
  private sendError: KernelError | null = null;
  /* destroy()'s error, for receives */
  private aborted: KernelError | null = null;
  private eof = false;
  private paused = false;
  /* closing: whatever arrives is read and thrown away */
  private discarding = false;
  /* a recv is copying out of the receive area (teardown must not free it under the copy) */
  private copying = false;
  /* a recv holds the receive side (sblock); the others wait in line, watched (recvLine) */
  private recvHeld = false;
  private readonly recvLine: RecvWaiter[] = [];
  /* the recv holding the receive side, asleep for data: true once it has its answer (wakeReaders) */
  private recvSleeper: (() => boolean) | null = null;
  /* the sends in line, in call order; the first is the one going out */
  private readonly sendq: SendOp[] = [];
  private pumping = false;
  private pumpSleepers: (() => void)[] = [];
  private wakeups = 0;
  /* processes watched since a send or recv of theirs slept here, and how to stop watching each */
  private readonly watched = new Map<Proc, () => void>();
  private readonly counts = { bytesSent: 0, loanedBytes: 0, copiedBytes: 0, fallbackBytes: 0 };
  private readonly recvCounts = newRecvCounts();
  /* the receive counters to add to: this socket's and the kernel's (mbufStats) */
  private readonly counters: RecvCounts[];
  /* a receive freed a chunk of the receive area */
  private readonly onFreed = () => this.resumeReading();
  private closing: Promise<void> | null = null;
  private readonly closed: Promise<void>;

  /** @internal sockConnect / sockListen make sockets */
  constructor(
    kernel: Kernel,
    tcp: net.Socket,
    rcv: RecvBuffer,
    opts: { sendHighWater?: number; autoThreshold?: number },
  ) {
    this.kernel = kernel;
    this.tcp = tcp;
    this.rcv = rcv;
    this.snd = new SendBuffer(opts.sendHighWater ?? DEFAULT_HIWAT);
    this.autoThreshold = opts.autoThreshold;
    this.counters = [this.recvCounts, mbufSystem(kernel).recv];
    this.remoteAddress = tcp.remoteAddress ?? '';
    this.remotePort = tcp.remotePort ?? 0;
    this.localPort = tcp.localPort ?? 0;
    this.closed = new Promise((resolve) => tcp.once('close', () => resolve(this.teardown())));
    tcp.on('error', (err) => {
      this.error ??= kernelErrorFrom('socket', err);
    });
    tcp.on('end', () => {
      /* a reset node:net took for an end (net_glue.endWasReset) is an error, as any other reset */
      if (endWasReset(tcp)) {
        tcp.destroy(resetError());
        return;
      }
      this.eof = true;
      this.wakeReaders();
    });
  }

  /** @internal onread: the hooks node:net reads through (into our receive area) */
  static onread(get: () => Socket | null, rcv: RecvBuffer): OnRead {
    return {
      buffer: () => rcv.arm(),
      callback: (n, buf) => {
        const more = rcv.filled(n, buf);
        const so = get();
        return so === null ? more : so.received(more);
      },
    };
  }

  /** open, with no error seen: sends are accepted */
  get isOpen(): boolean {
    return this.state === 'open' && this.error === null;
  }

  /** bytes queued to the host and not yet taken by it */
  get sendQueued(): number {
    return this.snd.cc;
  }

  /** bytes received and not yet read by recv (FIONREAD) */
  get recvQueued(): number {
    return this.rcv.cc;
  }

  /** sends accepted and not yet all handed to the host */
  get pendingSends(): number {
    return this.sendq.length;
  }

  /**
   * stats: what the socket has done so far (SocketStats)
   * => returns a new object
   */
  stats(): SocketStats {
    const c = this.counts;
    let pinned = 0;
    for (const op of this.sendq) pinned += op.pinnedPages;
    return {
      bytesSent: c.bytesSent,
      loanedBytes: c.loanedBytes,
      copiedBytes: c.copiedBytes,
      loanFallbackBytes: c.fallbackBytes,
      pendingSends: this.sendq.length,
      pinnedPages: pinned,
      sendQueued: this.snd.cc,
      bytesReceived: this.recvCounts.copiedBytes + this.recvCounts.transferredBytes,
      receivedByCopy: this.recvCounts.copiedBytes,
      receivedByTransfer: this.recvCounts.transferredBytes,
      pagesTransferred: this.recvCounts.pagesTransferred,
      transferZeroFilled: this.recvCounts.zeroFilledBytes,
      transferFallbacks: { ...this.recvCounts.fallbacks },
    };
  }

  /**
   * send: send len bytes of a process's memory at va (sosend).
   * => opts: an object or undefined; mode 'copy' (into clusters), 'loan' (page loan), or 'auto' (loan
   *    from the threshold up; default)
   * => the send's place in the socket's line is fixed at the call: sends on a socket reach the peer
   *    whole and in call order, awaited or not, whatever their modes
   * => it carries the bytes that were in memory at the call: when no earlier send is pending and the
   *    bytes fit the send buffer, they are copied or loaned and handed to the host before send()
   *    returns; the rest is pinned copy-on-write at the call and goes as room appears -- except pages of
   *    a file or of shared memory that are not in RAM at the call, read when their chunk goes (sosend.ts)
   * => resolves once every byte is handed to the host; result.done settles when the host has them all
   *    and every loan has ended
   * => rejects at once, with nothing sent: EINVAL (bad arguments, a process of another kernel), ESRCH
   *    (the process has exited), EFAULT (memory unmapped or unreadable), EPIPE (socket closed or
   *    closing), ECONNRESET
   * => rejects later with a SendError (bytesSent: how many bytes went first, possibly 0): ESRCH / EFAULT
   *    (the process exited, or the range was unmapped, while the send waited; the socket stays open),
   *    EPIPE (closed with linger 0, or the linger ran out), ECONNABORTED (destroy()), ECONNRESET
   */
  send(proc: Proc, va: number, len: number, opts: SendOptions = {}): Promise<SendResult> {
    let op: SendOp;
    let first: Built | null = null;
    try {
      const mode = this.checkSendArgs(proc, va, len, opts);
      this.checkSendable();
      proc.checkRange('sosend', va, len, Prot.READ);
      const loanFrom = this.loanFrom(mode);
      /* nothing ahead of it: its first chunk goes now -- and if that is all of it, so does the send */
      if (this.sendq.length === 0 && loanFrom !== null) first = this.buildNow(proc, va, len, loanFrom);
      if (first !== null && first.n === len) return Promise.resolve(this.sendWhole(first));
      op = new SendOp(proc, va, len, loanFrom);
    } catch (err) {
      return Promise.reject(err);
    }
    this.sendq.push(op);
    if (first !== null) this.transmitChunk(op, first);
    if (!op.settled) {
      op.pin();
      this.watch(op.proc);
      void this.pump();
    }
    return op.promise;
  }

  /* checkSendArgs: send's arguments, before anything is done; returns the mode */
  private checkSendArgs(proc: Proc, va: number, len: number, opts: SendOptions): SendMode {
    checkOptions('sosend', opts);
    this.checkProc('sosend', proc);
    checkUserBuffer('sosend', proc, va, len);
    const mode = option(opts.mode, 'auto');
    if (mode !== 'copy' && mode !== 'loan' && mode !== 'auto') {
      throw new KernelError('EINVAL', `sosend: mode must be 'copy', 'loan' or 'auto', not ${String(mode)}`);
    }
    return mode;
  }

  /* checkProc: EINVAL for a process of another kernel (its memory is not this socket's kernel's) */
  private checkProc(fn: string, proc: Proc): void {
    if (proc instanceof Proc && proc.kernel !== this.kernel) {
      throw new KernelError('EINVAL', `${fn}: process ${proc.pid} is a process of another kernel`);
    }
  }

  /* loanFrom: chunks of at least this many bytes are loaned; null if `auto` is still being measured */
  private loanFrom(mode: SendMode): number | null {
    if (mode === 'loan') return 0;
    if (mode === 'copy') return Number.POSITIVE_INFINITY;
    const t = this.autoThreshold ?? autoThresholdKnown();
    if (t === null) void sosendAutoThreshold();
    return t;
  }

  /*
   * buildNow: the first chunk of a send with nothing ahead of it (from va, len bytes in all), built
   * before send() returns; null if it can't be had at once (the send then pins and waits)
   */
  private buildNow(proc: Proc, va: number, len: number, loanFrom: number): Built | null {
    const n = this.chunkSize(va, len);
    if (n === 0) return null;
    const loan = n >= loanFrom;
    const m = loan ? mbufLoanNow(proc, va, n) : null;
    if (m !== null) return { m, n, loaned: true, fallback: false };
    if (loan && !this.mayFallBack(va, n)) return null;
    const c = mbufCopyinNow(proc, va, n, { overdraft: this.mayOverdraft(n) });
    return c === null ? null : { m: c, n, loaned: false, fallback: loan };
  }

  /* sendWhole: hand a send that is all one chunk to the host; it is done once that chunk is */
  private sendWhole(b: Built): SendResult {
    const done = this.transmit(b.m, b.n, b.loaned);
    done.catch(() => undefined);
    this.countSent(b);
    const loaned = b.loaned ? b.n : 0;
    return { bytes: b.n, loanedBytes: loaned, copiedBytes: b.n - loaned, done };
  }

  /*
   * mayFallBack: may a loan of the next n bytes of op, which could not be had at once, be a copy
   * instead? Only for want of the shared loan budget (a loan that needs I/O waits for it, pinned), and
   * only while none of this socket's own loans are in flight: those come back as its own peer reads,
   * so it waits for them rather than copy -- but it never waits on budget others hold
   */
  private mayFallBack(va: number, n: number): boolean {
    const kva = mbufSystem(this.kernel).kva;
    const npages = Math.ceil(((va % PAGE_SIZE) + n) / PAGE_SIZE);
    const short = kva.waiting > 0 || kva.usedPages + npages > kva.limitPages;
    return short && this.loansInFlight === 0;
  }

  /* mayOverdraft: may a copy of n bytes go past the cluster pool's limit? (nothing of ours in flight) */
  private mayOverdraft(n: number): boolean {
    return this.snd.cc === 0 && n <= OVERDRAFT_BYTES;
  }

  /*
   * chunkSize: how many bytes of op to send next: as many as fit the send buffer (all of them when
   * nothing is in flight), the cluster pool and the loan budget (from wherever in its page it starts);
   * 0 while the send buffer has less room than is worth a chunk
   */
  private chunkSize(va: number, left: number): number {
    const sys = mbufSystem(this.kernel);
    const kvaBytes = sys.kva.limitPages * PAGE_SIZE - (va % PAGE_SIZE);
    const cap = Math.min(left, this.snd.hiwat, sys.clusters.capacity * MCLBYTES, kvaBytes);
    if (this.snd.cc === 0) return cap;
    const room = this.snd.hiwat - this.snd.cc;
    return room >= Math.min(cap, SB_LOWAT) ? Math.min(cap, room) : 0;
  }

  /*
   * pump: send the pending sends, in order, chunk by chunk, as room appears (sosend's loop around
   * sbwait); one pump per socket at a time
   */
  private async pump(): Promise<void> {
    if (this.pumping) return;
    this.pumping = true;
    try {
      while (this.sendq.length > 0) {
        const seen = this.wakeups;
        const progressed = await this.step(this.sendq[0]);
        if (!progressed && seen === this.wakeups) await new Promise<void>((r) => this.pumpSleepers.push(r));
      }
    } finally {
      this.pumping = false;
    }
  }

  /* wake: something the pump may be waiting for happened (room, a release, a close, a process change) */
  private wake(): void {
    this.wakeups++;
    if (this.pumpSleepers.length > 0) for (const w of this.pumpSleepers.splice(0)) w();
  }

  /* step: one move of the first send: fail it, or send a chunk; false if it must wait for something */
  private async step(op: SendOp): Promise<boolean> {
    const err = this.opError(op);
    if (err !== null) {
      this.failOp(op, err);
      return true;
    }
    if (op.loanFrom === null) {
      op.loanFrom = await sosendAutoThreshold();
      return true;
    }
    /* a chunk comes all from pinned pages, or all from the process's memory */
    const n = op.chunkFrom(this.chunkSize(op.va + op.sent, op.len - op.sent)).n;
    if (n === 0) return false;
    let built: Built | null;
    op.building = true;
    try {
      built = await this.build(op, n);
    } catch (e) {
      /* a send that failed meanwhile (its process exited, ...) has its error already */
      if (!(e instanceof KernelError)) throw e;
      this.failOp(op, op.proc.exitedMeanwhile(e) as KernelError);
      return true;
    } finally {
      op.building = false;
      if (op.settled) op.unpinAll();
    }
    if (built === null) {
      void mbufSystem(this.kernel)
        .waitRelease()
        .then(() => this.wake());
      return false;
    }
    if (op.settled || this.opError(op) !== null) mFreem(built.m);
    else this.transmitChunk(op, built);
    return true;
  }

  /*
   * build: the next chunk of op (n bytes, or less for an overdraft), from its pinned pages or from
   * the process's memory: loaned if the budget allows, else copied (unless our own loans in flight
   * will bring budget back: mayFallBack); null if it has to wait
   */
  private async build(op: SendOp, n: number): Promise<Built | null> {
    const loan = n >= op.loanFrom!;
    if (loan) {
      const m = await this.chain(op, n, true, false);
      if (m !== null) return { m, n, loaned: true, fallback: false };
      if (this.loansInFlight > 0) return null;
    }
    let m = await this.chain(op, n, false, false);
    if (m === null && this.mayOverdraft(Math.min(n, OVERDRAFT_BYTES))) {
      n = Math.min(n, OVERDRAFT_BYTES);
      m = await this.chain(op, n, false, true);
    }
    return m === null ? null : { m, n, loaned: false, fallback: loan };
  }

  /* chain: n bytes of op by loan or copy, without waiting for the shared budgets (null if short) */
  private chain(op: SendOp, n: number, loan: boolean, overdraft: boolean): Promise<Mbuf | null> {
    const pinned = op.chunkFrom(n).span;
    const opts = { nowait: true, overdraft: overdraft || undefined };
    if (pinned !== null) {
      const { anons, off } = pinned;
      return loan
        ? mbufLoanAnons(this.kernel, anons, off, n, { nowait: true })
        : mbufCopyinAnons(this.kernel, anons, off, n, opts);
    }
    const va = op.va + op.sent;
    return loan ? mbufLoan(op.proc, va, n, { nowait: true }) : mbufCopyin(op.proc, va, n, opts);
  }

  /* transmitChunk: hand a built chunk of the first send to the host; the send is done after its last */
  private transmitChunk(op: SendOp, b: Built): void {
    const done = this.transmit(b.m, b.n, b.loaned);
    /* a later chunk may still fail the send: then nobody awaits this one's completion */
    done.catch(() => undefined);
    op.dones.push(done);
    op.sent += b.n;
    op.unpinBefore(op.sent);
    if (b.loaned) op.loanedBytes += b.n;
    else op.copiedBytes += b.n;
    this.countSent(b);
    if (op.sent === op.len) this.finishOp(op);
  }

  /* countSent: a chunk went to the host: the socket's counters */
  private countSent(b: Built): void {
    const c = this.counts;
    c.bytesSent += b.n;
    if (b.loaned) c.loanedBytes += b.n;
    else c.copiedBytes += b.n;
    if (b.fallback) this.countFallback(b.n);
  }

  private countFallback(n: number): void {
    const sys = mbufSystem(this.kernel);
    sys.loanFallbacks++;
    sys.loanFallbackBytes += n;
    this.counts.fallbackBytes += n;
  }

  /* opError: why op can't go on, if it can't: the socket's failure, its process gone, its range gone */
  private opError(op: SendOp): KernelError | null {
    if (this.sendError !== null) return this.sendError;
    if (this.error !== null) return this.error;
    if (this.state === 'closed') return notSent();
    return procError('sosend', op.proc, op.va + op.sent, op.len - op.sent, Prot.READ);
  }

  private finishOp(op: SendOp): void {
    this.dequeue(op);
    op.finish();
  }

  private failOp(op: SendOp, err: KernelError): void {
    if (op.settled) return;
    this.dequeue(op);
    op.fail(err);
  }

  private dequeue(op: SendOp): void {
    const i = this.sendq.indexOf(op);
    if (i >= 0) this.sendq.splice(i, 1);
  }

  /* failSends: fail every pending send with err (close, destroy, teardown) */
  private failSends(err: KernelError): void {
    for (const op of [...this.sendq]) this.failOp(op, err);
    this.wake();
  }

  /**
   * transmit: queue a chain's views to the host.
   * => settles when the host has its bytes: at once if the host socket took every byte node:net held
   *    before write() returned (hostTookAll), else when its write callback fires
   */
  private transmit(m: Mbuf, bytes: number, loaned: boolean): Promise<void> {
    this.snd.add(bytes);
    const views = mBuffers(m);
    const done = new Promise<void>((resolve, reject) => {
      const f: InFlight = { m, bytes, loaned, resolve, reject };
      this.inflight.add(f);
      if (loaned) this.loansInFlight++;
      /* one writev for the whole chain: on loopback each plain write would go out alone */
      const last = views.length - 1;
      if (last > 0) this.tcp.cork();
      for (let i = 0; i < last; i++) this.tcp.write(views[i]);
      this.written.push(f);
      this.tcp.write(views[last], this.onWritten);
      if (last > 0) this.tcp.uncork();
    });
    if (this.hostTookAll()) for (const f of [...this.inflight]) this.complete(f, null);
    return done;
  }

  /**
   * hostTookAll: node:net holds none of our bytes and the connection is sound: every chunk written so
   * far is in the host socket. A write the host socket takes whole goes in at once (libuv's
   * uv_try_write), but node:net calls it back only on the next tick; until then the chunk would count
   * against the send buffer, and a send behind it would be pinned and wait for room that is already there.
   */
  private hostTookAll(): boolean {
    const t = this.tcp;
    return t.writableLength === 0 && !t.writableCorked && t.errored === null && !t.destroyed;
  }

  /*
   * complete: the host took a chunk (or the connection died): free its mbufs, end its loans.
   * => on a destroyed socket no callback means delivery: Node calls back a write that destroy() cut
   *    short with no error (onWriteComplete), so the chunk fails with the socket's error or EPIPE
   */
  private complete(f: InFlight, err: Error | null): void {
    if (f.m === null) return;
    mFreem(f.m);
    f.m = null;
    this.inflight.delete(f);
    if (f.loaned) this.loansInFlight--;
    this.snd.drop(f.bytes);
    this.wake();
    if (err === null && !this.tcp.destroyed) f.resolve();
    else f.reject(this.error ?? kernelErrorFrom('sosend', err ?? notSent()));
  }

  /*
   * watch: follow a process from the first time a send or recv of it sleeps here: when its address
   * space changes or it exits, sleepers wake and look again (opError, recvError). The watch stays once
   * no one sleeps -- a receive loop sleeps once per read, and registering anew each time was a
   * measurable part of a recv's cost -- until the process exits or the socket goes (unwatchAll)
   */
  private watch(proc: Proc): void {
    if (!this.watched.has(proc))
      this.watched.set(
        proc,
        proc.watch(() => this.procChanged(proc)),
      );
  }

  /* unwatchAll: stop following processes (the socket is gone) */
  private unwatchAll(): void {
    for (const unwatch of this.watched.values()) unwatch();
    this.watched.clear();
  }

  /* procChanged: a watched process exited or unmapped: fail its sends that can't go on now; wake all */
  private procChanged(proc: Proc): void {
    if (proc.exited) {
      this.watched.get(proc)?.();
      this.watched.delete(proc);
    }
    for (const op of [...this.sendq]) {
      if (op.proc !== proc) continue;
      const err = procError('sosend', proc, op.va + op.sent, op.len - op.sent, Prot.READ);
      if (err !== null) this.failOp(op, err);
    }
    for (const w of [...this.recvLine]) {
      const err = w.proc === proc ? procError('soreceive', proc, w.va, w.len, Prot.WRITE) : null;
      if (err === null) continue;
      this.recvLine.splice(this.recvLine.indexOf(w), 1);
      w.fail(err);
    }
    this.wake();
    this.wakeReaders();
  }

  /**
   * recv: read up to len bytes into a process's memory at va (soreceive).
   * => waits for data; returns the number of bytes read (>= 1), or 0 at end of stream or once the
   *    socket is closing or closed
   * => receives go one at a time, in call order (sblock); waiting for its turn is waiting too
   * => throws EINVAL (bad arguments, a process of another kernel), ESRCH (the process has exited,
   *    also while it waits), EFAULT (unmapped or read-only memory, also if it becomes so while it
   *    waits), ECONNRESET, ECONNABORTED (destroy()); then nothing is consumed
   * => a recv that fails part-way (the memory went while a fault slept, a page-in failed with EIO,
   *    no page with ENOMEM, the process exited) returns the count it moved; the next recv meets the
   *    error, if it persists, with nothing consumed
   */
  recv(proc: Proc, va: number, len: number, opts: RecvOptions = {}): Promise<number> {
    let how: RecvHow;
    try {
      how = this.checkRecvArgs(proc, va, len, opts);
    } catch (err) {
      return Promise.reject(err);
    }
    if (this.recvHeld) {
      return this.waitTurn(proc, va, len).then(() => this.recvHolding(proc, va, len, how, true));
    }
    this.recvHeld = true;
    return this.recvHolding(proc, va, len, how, false);
  }

  /*
   * recvHolding: a recv that holds the receive side: move what is queued, end or fail at once if it
   * can; else sleep until data, the end, an error or a change to its process -- and then do it from
   * whatever woke it: most often node:net's read callback, so the bytes move as they arrive, before
   * the host reads again (as a raw onread server writes back from its callback)
   */
  private recvHolding(proc: Proc, va: number, len: number, how: RecvHow, slept: boolean): Promise<number> {
    let now: number | Promise<number> | null;
    try {
      now = this.recvNow(proc, va, len, how, slept);
    } catch (err) {
      return Promise.reject(err);
    }
    return now !== null ? Promise.resolve(now) : this.sleepForData(proc, va, len, how);
  }

  /* sleepForData: sleep, watched, until recvNow has an answer; the waker runs it */
  private sleepForData(proc: Proc, va: number, len: number, how: RecvHow): Promise<number> {
    return new Promise<number>((resolve, reject) => {
      this.watch(proc);
      this.recvSleeper = () => {
        let now: number | Promise<number> | null;
        try {
          now = this.recvNow(proc, va, len, how, true);
          if (now === null) return false;
        } catch (err) {
          reject(err);
          return true;
        }
        resolve(now);
        return true;
      };
    });
  }

  /*
   * recvNow: one look by the recv holding the receive side: the count moved (a Promise of it if a
   * copy sleeps on a fault), 0 at the end, or null if it must wait for data
   * => lets the receive side go when it has an answer; throws why the recv fails (nothing consumed)
   */
  private recvNow(
    proc: Proc,
    va: number,
    len: number,
    how: RecvHow,
    slept: boolean,
  ): number | Promise<number> | null {
    try {
      /* the range may have gone while the recv slept: then nothing is consumed */
      const err = slept ? procError('soreceive', proc, va, len, Prot.WRITE) : null;
      /* once close() or destroy() is called, what is queued is the socket's to drop, not to hand out */
      const shut = this.state !== 'open' || this.discarding || this.rcv.released;
      if (this.rcv.empty || shut) {
        /* a reset is an error, not an end of stream (soreceive checks so_error before CANTRCVMORE) */
        if (this.error !== null) throw this.error;
        if (this.aborted !== null) throw this.aborted;
        if (shut || this.eof) {
          this.unlockRecv();
          return 0;
        }
        if (err !== null) throw err;
        return null;
      }
      if (err !== null) throw err;
    } catch (err) {
      this.unlockRecv();
      throw err;
    }
    return this.receiveHeld(proc, va, len, how);
  }

  /*
   * receiveHeld: with the receive side held and data queued, move it to the user (copyout) and let
   * the receive side go -- at once, unless a copy sleeps on a fault
   */
  private receiveHeld(proc: Proc, va: number, len: number, how: RecvHow): number | Promise<number> {
    let n: number | Promise<number>;
    try {
      n = this.copyout(proc, va, len, how);
    } catch (err) {
      this.unlockRecv();
      throw err;
    }
    if (typeof n === 'number') {
      this.unlockRecv();
      return n;
    }
    return n.finally(() => this.unlockRecv());
  }

  /* checkRecvArgs: recv's arguments, before anything is done; returns how to receive (mode, tail) */
  private checkRecvArgs(proc: Proc, va: number, len: number, opts: RecvOptions): RecvHow {
    checkOptions('soreceive', opts);
    this.checkProc('soreceive', proc);
    checkUserBuffer('soreceive', proc, va, len);
    const mode = option(opts.mode, 'copy');
    if (mode !== 'copy' && mode !== 'transfer' && mode !== 'auto') {
      throw new KernelError(
        'EINVAL',
        `soreceive: mode must be 'copy', 'transfer' or 'auto', not ${String(mode)}`,
      );
    }
    const tail = option(opts.tail, 'copy');
    if (tail !== 'copy' && tail !== 'zero-fill') {
      throw new KernelError('EINVAL', `soreceive: tail must be 'copy' or 'zero-fill', not ${String(tail)}`);
    }
    proc.checkRange('soreceive', va, len, Prot.WRITE);
    return { mode, tail };
  }

  /*
   * copyout: move queued bytes to the user, by copy or page transfer (soreceive.ts) -- a count at once,
   * or a Promise if a copy sleeps on a fault: the receive area stays pinned until it settles
   */
  private copyout(proc: Proc, va: number, len: number, how: RecvHow): number | Promise<number> {
    this.copying = true;
    let n: number | Promise<number>;
    try {
      n = receiveInto({ ...how, rcv: this.rcv, proc, va, len, counts: this.counters, freed: this.onFreed });
    } catch (err) {
      this.copied();
      throw err;
    }
    if (typeof n === 'number') {
      this.copied();
      return n;
    }
    return n.finally(() => this.copied());
  }

  /* copied: a copyout is over: a socket that closed or began discarding meanwhile does it now */
  private copied(): void {
    this.copying = false;
    if (this.state === 'closed') this.rcv.release();
    else if (this.discarding) this.discardReceived();
  }

  /* received: node:net read into the receive area; returns whether it may read on */
  private received(more: boolean): boolean {
    if (this.discarding && !this.copying) {
      this.rcv.discard();
      return true;
    }
    if (!more) this.paused = true;
    this.wakeReaders();
    /* the recv woken here may have freed a chunk, and so let reading go on (resumeReading) */
    return !this.paused;
  }

  /* resumeReading: a paused reader may read again once a chunk is free */
  private resumeReading(): void {
    if (this.paused && this.rcv.canResume && this.state !== 'closed') {
      this.paused = false;
      this.tcp.resume();
    }
  }

  /**
   * close: finish sending, then close (soclose with SO_LINGER). Pending sends go out; then our side
   * is half-closed (FIN) and whatever the peer still sends is read and discarded until its FIN, so that
   * the host never answers with a reset that could make the peer lose what we sent; then everything
   * the socket held is released: queued mbufs freed (loans ended), pins dropped, the receive area
   * returned, waiting readers woken (they get 0).
   * => opts: an object or undefined; linger: ms for all that (default 10 s); 0 resets the connection
   *    at once (pending sends fail with EPIPE)
   * => resolves when every byte of every resolved `done` can still reach the peer (the peer closed its
   *    side, and no reset will follow)
   * => rejects ETIMEDOUT if the linger ran out before every pending send was handed to the host and
   *    taken by it (those sends fail with EPIPE), or before the peer closed its side (the socket is
   *    closed anyway, without a reset unless the peer sends more); ECONNRESET (or the connection's other error) if the
   *    peer reset the connection, before or during the close; the socket is released all the same.
   *    With linger 0 -- a reset asked for -- and after destroy() it only waits for the release, as
   *    does a second close() (the first reports the outcome)
   * => throws EINVAL (bad options; linger not a number in 0 .. 2^31 - 1, the longest a timer can
   *    wait), and then the socket stays as it was
   */
  async close(opts: CloseOptions = {}): Promise<void> {
    checkOptions('soclose', opts);
    const linger = option(opts.linger, 10_000);
    if (typeof linger !== 'number' || !(linger >= 0 && linger <= MAX_LINGER_MS)) {
      throw new KernelError('EINVAL', `soclose: bad linger ${String(linger)} (0 .. ${MAX_LINGER_MS} ms)`);
    }
    /* a close already under way reports its outcome to its own caller; later ones wait for the release */
    if (this.closing !== null) return this.closed;
    const open = this.state === 'open' && this.error === null;
    if (this.state === 'open') this.state = 'closing';
    if (linger === 0) this.closing = this.abort();
    else if (open) this.closing = this.lingerClose(linger);
    else this.closing = this.closed.then(() => this.throwIfReset());
    return this.closing;
  }

  /* abort: close with linger 0: pending sends fail (EPIPE), the connection is reset */
  private async abort(): Promise<void> {
    this.sendError ??= new KernelError('EPIPE', 'sosend: socket closed (reset)');
    this.failSends(this.sendError);
    resetTcp(this.tcp);
    await this.closed;
  }

  /* throwIfReset: a close after the connection failed: the failure, unless we destroyed it ourselves */
  private throwIfReset(): void {
    if (this.aborted === null && this.error !== null) throw this.error;
  }

  /* lingerClose: pending sends out, FIN, discard until the peer's FIN (or the linger runs out), release */
  private async lingerClose(linger: number): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<void>((r) => {
      timer = setTimeout(r, linger);
    });
    try {
      await Promise.race([this.sendsDone(), deadline, this.closed]);
      const unsent = this.sendq.length > 0;
      if (unsent) {
        this.sendError ??= new KernelError('EPIPE', 'sosend: socket closed before the data was sent');
        this.failSends(this.sendError);
      }
      this.startDiscarding();
      const flushed = new Promise<void>((r) => this.tcp.end(() => r()));
      const finished = Promise.all([flushed, this.peerClosed()]);
      await Promise.race([finished, deadline, this.closed]);
      const taken = this.inflight.size === 0;
      const finSeen = this.eof;
      this.tcp.destroy();
      await this.closed;
      this.throwIfReset();
      if (this.aborted !== null) return;
      if (unsent || !taken) {
        throw new KernelError(
          'ETIMEDOUT',
          `soclose: the linger of ${linger} ms ran out before the data was sent`,
        );
      }
      /* closing without the peer's FIN: if it sends more, its host gets a reset and may drop what
         its program had not read yet -- we can't promise delivery, so we don't */
      if (!finSeen) {
        throw new KernelError(
          'ETIMEDOUT',
          `soclose: the linger of ${linger} ms ran out before the peer closed its side (what it had not read may be lost)`,
        );
      }
    } finally {
      clearTimeout(timer);
    }
  }

  /* sendsDone: every pending send handed to the host (or failed) */
  private async sendsDone(): Promise<void> {
    while (this.sendq.length > 0) await this.sendq[this.sendq.length - 1].promise.catch(() => undefined);
  }

  /* peerClosed: the peer's FIN (or the end of the connection) */
  private peerClosed(): Promise<void> {
    if (this.eof) return Promise.resolve();
    return new Promise((r) => this.tcp.once('end', () => r()));
  }

  /* startDiscarding: from now on, what arrives is read and dropped; readers get 0 */
  private startDiscarding(): void {
    this.discarding = true;
    this.wakeReaders();
    if (!this.copying) this.discardReceived();
  }

  /* discardReceived: drop what is queued (a copy in progress is done with it) and read on */
  private discardReceived(): void {
    this.rcv.discard();
    this.resumeReading();
  }

  /**
   * destroy: abort the connection (soabort): pending sends and receives (sleeping or later) fail
   * with ECONNABORTED -- later sends with EPIPE --, everything is released; a close() afterwards
   * waits for the release
   * => the peer sees a reset (RST, ECONNRESET), never a clean end of stream: a stream cut short must
   *    not look whole to it -- also during a close(): if its FIN is already on its way (after every
   *    byte sent), the reset follows it (resetTcp). (A node:net peer on libuv 1.46 may report a reset
   *    that lands while it has bytes to read as an end; see the README.)
   */
  destroy(): void {
    if (this.state === 'closed' || this.aborted !== null) return;
    this.state = 'closing';
    this.aborted = new KernelError('ECONNABORTED', 'socket: destroyed');
    this.sendError ??= this.aborted;
    this.failSends(this.sendError);
    this.wakeReaders();
    resetTcp(this.tcp);
  }

  /* teardown: the connection is gone; release everything it held */
  private teardown(): void {
    this.state = 'closed';
    const err = this.error ?? this.sendError ?? notSent();
    this.failSends(err);
    for (const f of [...this.inflight]) this.complete(f, err);
    this.written.length = 0;
    this.snd.abort(err);
    if (!this.copying) this.rcv.release();
    this.wakeReaders();
    this.unwatchAll();
  }

  /* wakeReaders: data, the end, an error or a change to a process: the sleeping recv looks again */
  private wakeReaders(): void {
    const w = this.recvSleeper;
    if (w === null) return;
    this.recvSleeper = null;
    if (!w()) this.recvSleeper ??= w;
  }

  private checkSendable(): void {
    if (this.error !== null) throw this.error;
    if (this.state !== 'open') throw new KernelError('EPIPE', 'sosend: socket is closed');
  }

  /*
   * waitTurn: wait for the receive side (sblock), held by another recv: receives on a socket go one
   * at a time, in call order; one that waits for its turn is watched like one that waits for data,
   * and fails (ESRCH, EFAULT) when its process or range goes; it holds the receive side once entered
   */
  private async waitTurn(proc: Proc, va: number, len: number): Promise<void> {
    this.watch(proc);
    await new Promise<void>((enter, fail) => this.recvLine.push({ proc, va, len, enter, fail }));
  }

  /* unlockRecv: hand the receive side to the next in line (it stays held), or let it go */
  private unlockRecv(): void {
    const next = this.recvLine.shift();
    if (next !== undefined) next.enter();
    else this.recvHeld = false;
  }
}

/*
 * procError: may a call of proc's go on with [va, va + len)? ESRCH if the process has exited, EFAULT
 * if the range is no longer mapped for `access`; null if it may
 */
function procError(fn: string, proc: Proc, va: number, len: number, access: number): KernelError | null {
  if (proc.exited) return new KernelError('ESRCH', `${fn}: process ${proc.pid} exited while the call slept`);
  try {
    proc.checkRange(fn, va, len, access);
  } catch (err) {
    if (err instanceof KernelError) return err;
    throw err;
  }
  return null;
}

function notSent(): KernelError {
  return new KernelError('EPIPE', 'sosend: socket closed before the data was sent');
}
