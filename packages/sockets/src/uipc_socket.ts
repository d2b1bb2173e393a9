/*
 * uipc_socket.ts: a socket of the toy kernel over a real TCP connection (NetBSD's kern/uipc_socket.c:
 * sosend, soreceive, soclose).
 *
 * sosend (Socket.send) turns user memory into mbufs -- by copy into clusters, by page loan, or by
 * whichever the `auto` threshold picks -- and hands their views to node:net as one corked batch, so
 * a chain goes to the host in one writev (Node batches plain writes only while a write is pending,
 * and on loopback every write completes at once). Node reads those bytes *after* write() returns, whenever the
 * host socket has room; only when its write callback fires are the bytes in the host kernel. So the
 * mbufs (and the loans under them) live until that callback: then they are freed and the send's `done`
 * settles. Meanwhile the loaned pages are read-only to the user: a write to them takes a copy-on-write
 * fault, and the wire still carries the bytes as they were when send() was called.
 *
 * A send larger than the send buffer goes out in chunks, each waiting for room (backpressure), and
 * never more than the loan address-space budget at once. Sends on one socket are serialised (sblock).
 * A chunk handed to the host cannot be taken back: a send that fails after some chunks went out (its
 * memory unmapped or its process gone while it waited for room, the socket closed or reset) throws a
 * SendError that says how many bytes went (bytesSent), as NetBSD's sosend returns an error after
 * partial data (for anything but EINTR / ERESTART / EWOULDBLOCK, which it turns into a short count).
 *
 * soreceive (Socket.recv) copies bytes the host read into the receive area out to the user.
 * Close and errors release everything: queued mbufs (so their loans), the receive area, waiters.
 */
import type net from 'node:net';
import { checkUserBuffer, type Kernel, KernelError, PAGE_SIZE, Proc, Prot } from '@loanout/core';
import { type Mbuf, MCLBYTES, mBuffers, mbufCopyin, mbufLoan, mbufSystem, mFreem } from '@loanout/mbuf';
import { kernelErrorFrom, type OnRead } from './net_glue.js';
import { type RecvBuffer, SendBuffer } from './sockbuf.js';
import { checkOptions, DEFAULT_HIWAT, MAX_LINGER_MS } from './sockopt.js';
import { sosendAutoThreshold } from './sosend_auto.js';

export type SendMode = 'copy' | 'loan' | 'auto';

export interface SocketOptions {
  /* send buffer high-water mark in bytes (a positive integer, default 1 MiB) */
  sendHighWater?: number;
  /* receive area: chunks of this many bytes (page multiple, default 32 KiB) ... */
  recvChunkBytes?: number;
  /* ... and this many of them (at least 2; default 4); the area can be at most the kernel's RAM */
  recvChunks?: number;
  /* `auto` loans sends of at least this many bytes (an integer >= 0; default: calibrated on this machine) */
  autoThreshold?: number;
}

export interface SendOptions {
  mode?: SendMode;
}

export interface SendResult {
  /* bytes sent */
  bytes: number;
  loanedBytes: number;
  copiedBytes: number;
  /* settles when the host has every byte and every loan has ended; rejects if the connection fails */
  done: Promise<void>;
}

export interface CloseOptions {
  /*
   * how long to wait for queued data to drain before closing anyway, in ms (default 10000; 0 = reset
   * now; at most 2^31 - 1, the longest a timer can wait)
   */
  linger?: number;
}

/*
 * SendError: a send failed after it had begun sending. `code` is why (EFAULT, ESRCH, EPIPE,
 * ECONNRESET, ...); bytesSent bytes, from the start of the range, were handed to the host first --
 * they are on the stream and cannot be taken back; `done` settles when those are in the host and
 * their loans have ended (it rejects if the connection fails first).
 */
export class SendError extends KernelError {
  readonly bytesSent: number;
  readonly done: Promise<void>;

  constructor(cause: KernelError, bytesSent: number, len: number, done: Promise<void>) {
    const why = cause.message.replace(/^sosend: /, '');
    super(cause.code, `sosend: ${bytesSent} of ${len} bytes sent, then ${why}`, { cause });
    this.bytesSent = bytesSent;
    this.done = done;
  }
}

/* what a send has handed to the host so far */
interface Sent {
  bytes: number;
  loanedBytes: number;
  copiedBytes: number;
  dones: Promise<void>[];
}

/* one chunk of a send, in flight to the host */
interface InFlight {
  m: Mbuf | null;
  bytes: number;
  resolve: () => void;
  reject: (err: Error) => void;
}

export class Socket {
  readonly kernel: Kernel;
  readonly remoteAddress: string;
  readonly remotePort: number;
  readonly localPort: number;
  private readonly tcp: net.Socket;
  private readonly snd: SendBuffer;
  private readonly rcv: RecvBuffer;
  private readonly inflight = new Set<InFlight>();
  private readonly autoThreshold: number | undefined;
  private state: 'open' | 'closing' | 'closed' = 'open';
  private error: KernelError | null = null;
  private eof = false;
  private paused = false;
  /* a recv is copying out of the receive area (teardown must not free it under the copy) */
  private copying = false;
  private sendLock: Promise<void> = Promise.resolve();
  private recvLock: Promise<void> = Promise.resolve();
  private dataWaiters: (() => void)[] = [];
  /* aborted when the socket closes: gives up a send's wait for loan address space */
  private readonly closing = new AbortController();
  private readonly closed: Promise<void>;

  /* not for users: sockConnect / sockListen make sockets */
  constructor(kernel: Kernel, tcp: net.Socket, rcv: RecvBuffer, opts: SocketOptions) {
    this.kernel = kernel;
    this.tcp = tcp;
    this.rcv = rcv;
    this.snd = new SendBuffer(opts.sendHighWater ?? DEFAULT_HIWAT);
    this.autoThreshold = opts.autoThreshold;
    this.remoteAddress = tcp.remoteAddress ?? '';
    this.remotePort = tcp.remotePort ?? 0;
    this.localPort = tcp.localPort ?? 0;
    this.closed = new Promise((resolve) => tcp.once('close', () => resolve(this.teardown())));
    tcp.on('error', (err) => {
      this.error ??= kernelErrorFrom('socket', err);
    });
    tcp.on('end', () => {
      this.eof = true;
      this.wakeReaders();
    });
  }

  /* onread: the hooks node:net reads through (into our receive area) */
  static onread(get: () => Socket | null, rcv: RecvBuffer): OnRead {
    return {
      buffer: () => rcv.arm(),
      callback: (n, buf) => {
        const more = rcv.filled(n, buf);
        const so = get();
        if (so !== null) {
          so.wakeReaders();
          if (!more) so.paused = true;
        }
        return more;
      },
    };
  }

  get isOpen(): boolean {
    return this.state === 'open' && this.error === null;
  }

  /* bytes queued to the host and not yet taken by it */
  get sendQueued(): number {
    return this.snd.cc;
  }

  /*
   * send: send len bytes of a process's memory at va (sosend).
   * => opts: an object or undefined; mode 'copy' (into clusters), 'loan' (page loan), or 'auto' (loan
   *    from the threshold up; default)
   * => resolves once every byte is queued to the host (waiting for room in the send buffer first);
   *    result.done settles when the host has them all and every loan has ended
   * => throws, with nothing sent: EINVAL (bad arguments, a process of another kernel), ESRCH (the
   *    process has exited), EFAULT (memory unmapped or unreadable), EPIPE (socket closed), ECONNRESET
   * => throws a SendError once it has begun: EFAULT / ESRCH (memory unmapped or process gone while
   *    the send waited for room; the socket stays open), EPIPE (socket closed, also while waiting for
   *    room or loan budget), ECONNRESET (connection failed); err.bytesSent bytes went out before it
   *    (0 if the first chunk failed: a send queued behind another, whose socket then closed)
   */
  async send(proc: Proc, va: number, len: number, opts: SendOptions = {}): Promise<SendResult> {
    const mode = this.checkSendArgs(proc, va, len, opts);
    this.checkSendable();
    proc.checkRange('sosend', va, len, Prot.READ);
    /* chunks of at least loanFrom bytes are loaned, smaller ones copied */
    let loanFrom = mode === 'loan' ? 0 : Number.POSITIVE_INFINITY;
    if (mode === 'auto') loanFrom = this.autoThreshold ?? (await sosendAutoThreshold());
    const unlock = await this.lock('send');
    try {
      return await this.sendChunks(proc, va, len, loanFrom);
    } finally {
      unlock();
    }
  }

  /* checkSendArgs: send's arguments, before anything is done; returns the mode */
  private checkSendArgs(proc: Proc, va: number, len: number, opts: SendOptions): SendMode {
    checkOptions('sosend', opts);
    this.checkProc('sosend', proc);
    checkUserBuffer('sosend', proc, va, len);
    const mode = opts.mode ?? 'auto';
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

  /* sendChunks: the send, chunk by chunk; a failure part-way says how much went (SendError) */
  private async sendChunks(proc: Proc, va: number, len: number, loanFrom: number): Promise<SendResult> {
    const sent: Sent = { bytes: 0, loanedBytes: 0, copiedBytes: 0, dones: [] };
    try {
      while (sent.bytes < len) await this.sendChunk(proc, va + sent.bytes, len - sent.bytes, loanFrom, sent);
    } catch (err) {
      if (!(err instanceof KernelError)) throw err;
      throw new SendError(err, sent.bytes, len, allDone(sent.dones));
    }
    const { bytes, loanedBytes, copiedBytes } = sent;
    return { bytes, loanedBytes, copiedBytes, done: allDone(sent.dones) };
  }

  /* sendChunk: wait for room, then turn the next chunk of the `left` bytes at va into mbufs and transmit it */
  private async sendChunk(proc: Proc, va: number, left: number, loanFrom: number, sent: Sent): Promise<void> {
    const mbufs = mbufSystem(this.kernel);
    /* a chunk fits the send buffer, the cluster pool, and (from wherever in its page it starts) the loan budget */
    const kvaBytes = mbufs.kva.limitPages * PAGE_SIZE - (va % PAGE_SIZE);
    const n = Math.min(left, this.snd.hiwat, mbufs.clusters.capacity * MCLBYTES, kvaBytes);
    if (!this.snd.fits(n)) await this.snd.waitSpace(n);
    this.checkSendable();
    const loan = n >= loanFrom;
    const m = await this.mbufs(loan, proc, va, n);
    if (!this.isOpen) {
      mFreem(m);
      this.checkSendable();
    }
    const done = this.transmit(m, n);
    /* a later chunk may still fail the send: then nobody awaits this one's completion */
    done.catch(() => undefined);
    sent.dones.push(done);
    if (loan) sent.loanedBytes += n;
    else sent.copiedBytes += n;
    sent.bytes += n;
  }

  /* mbufs: a chain by loan or copy, given up with EPIPE if the socket closes while it waits for room */
  private async mbufs(loan: boolean, proc: Proc, va: number, n: number): Promise<Mbuf> {
    const opts = { signal: this.closing.signal };
    try {
      return await (loan ? mbufLoan(proc, va, n, opts) : mbufCopyin(proc, va, n, opts));
    } catch (err) {
      if (err instanceof KernelError && err.code === 'EINTR') this.checkSendable();
      throw err;
    }
  }

  /* transmit: queue a chain's views to the host; settles when its write callback fires */
  private transmit(m: Mbuf, bytes: number): Promise<void> {
    this.snd.add(bytes);
    const views = mBuffers(m);
    return new Promise<void>((resolve, reject) => {
      const f: InFlight = { m, bytes, resolve, reject };
      this.inflight.add(f);
      /* one writev for the whole chain: on loopback each plain write would go out alone */
      const last = views.length - 1;
      if (last > 0) this.tcp.cork();
      for (let i = 0; i < last; i++) this.tcp.write(views[i]);
      this.tcp.write(views[last], (err) => this.complete(f, err ?? null));
      if (last > 0) this.tcp.uncork();
    });
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
    this.snd.drop(f.bytes);
    if (err === null && !this.tcp.destroyed) f.resolve();
    else f.reject(this.error ?? kernelErrorFrom('sosend', err ?? notSent()));
  }

  /*
   * recv: read up to len bytes into a process's memory at va (soreceive).
   * => waits for data; returns the number of bytes read (>= 1), or 0 at end of stream
   * => throws EINVAL (bad arguments, a process of another kernel), ESRCH (the process has exited),
   *    EFAULT (unmapped or read-only memory), ECONNRESET; then nothing is consumed
   */
  async recv(proc: Proc, va: number, len: number): Promise<number> {
    this.checkProc('soreceive', proc);
    checkUserBuffer('soreceive', proc, va, len);
    proc.checkRange('soreceive', va, len, Prot.WRITE);
    const unlock = await this.lock('recv');
    try {
      while (this.rcv.empty) {
        /* a reset is an error, not an end of stream (soreceive checks so_error before CANTRCVMORE) */
        if (this.error !== null) throw this.error;
        if (this.rcv.released || this.eof) return 0;
        await new Promise<void>((r) => this.dataWaiters.push(r));
      }
      return await this.copyout(proc, va, len);
    } finally {
      unlock();
    }
  }

  /* copyout: move queued bytes to the user; the receive area stays pinned while a copy may sleep */
  private async copyout(proc: Proc, va: number, len: number): Promise<number> {
    let done = 0;
    this.copying = true;
    try {
      for (let bytes = this.rcv.head(len); bytes !== null && done < len; bytes = this.rcv.head(len - done)) {
        await proc.write(va + done, bytes);
        done += bytes.length;
        if (this.rcv.consume(bytes.length) && this.paused && this.rcv.canResume && this.state !== 'closed') {
          this.paused = false;
          this.tcp.resume();
        }
      }
    } finally {
      this.copying = false;
      if (this.state === 'closed') this.rcv.release();
    }
    return done;
  }

  /*
   * close: finish sending, then close (soclose). Resolves when every resource of the socket is
   * released: queued mbufs freed (loans ended), receive area returned, waiters woken.
   * => opts: an object or undefined; linger: ms to wait for queued data to drain (default 10 s), 0
   *    resets the connection at once
   * => throws EINVAL (bad options; linger not a number in 0 .. 2^31 - 1, the longest a timer can
   *    wait), and then the socket stays as it was
   */
  async close(opts: CloseOptions = {}): Promise<void> {
    checkOptions('soclose', opts);
    const linger = opts.linger ?? 10_000;
    if (typeof linger !== 'number' || !(linger >= 0 && linger <= MAX_LINGER_MS)) {
      throw new KernelError('EINVAL', `soclose: bad linger ${String(linger)} (0 .. ${MAX_LINGER_MS} ms)`);
    }
    if (this.state === 'open') {
      this.state = 'closing';
      this.snd.abort(new KernelError('EPIPE', 'sosend: socket closed'));
      this.closing.abort();
      if (linger === 0) this.tcp.resetAndDestroy();
      else await this.drainThenDestroy(linger);
    }
    await this.closed;
  }

  /* destroy: close at once, with an error for anyone waiting (the socket was reset) */
  destroy(): void {
    if (this.state === 'closed') return;
    this.state = 'closing';
    this.closing.abort();
    this.tcp.destroy();
  }

  private async drainThenDestroy(linger: number): Promise<void> {
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, linger);
      this.tcp.end(() => {
        clearTimeout(timer);
        resolve();
      });
    });
    this.tcp.destroy();
  }

  /* teardown: the connection is gone; release everything it held */
  private teardown(): void {
    this.state = 'closed';
    const err = this.error ?? notSent();
    for (const f of [...this.inflight]) this.complete(f, err);
    this.snd.abort(err);
    this.closing.abort();
    if (!this.copying) this.rcv.release();
    this.wakeReaders();
  }

  private wakeReaders(): void {
    for (const w of this.dataWaiters.splice(0)) w();
  }

  private checkSendable(): void {
    if (this.error !== null) throw this.error;
    if (this.state !== 'open') throw new KernelError('EPIPE', 'sosend: socket is closed');
  }

  /* lock: serialise sends (or receives) on this socket (sblock) */
  private async lock(which: 'send' | 'recv'): Promise<() => void> {
    let unlock!: () => void;
    const mine = new Promise<void>((r) => {
      unlock = r;
    });
    const prev = which === 'send' ? this.sendLock : this.recvLock;
    if (which === 'send') this.sendLock = mine;
    else this.recvLock = mine;
    await prev;
    return unlock;
  }
}

/* allDone: one completion for a send's chunks (unobserved, it rejects quietly) */
function allDone(dones: Promise<void>[]): Promise<void> {
  const done = dones.length === 1 ? dones[0] : Promise.all(dones).then(() => undefined);
  done.catch(() => undefined);
  return done;
}

function notSent(): KernelError {
  return new KernelError('EPIPE', 'sosend: socket closed before the data was sent');
}
