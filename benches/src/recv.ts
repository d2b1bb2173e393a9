/*
 * recv.ts: receiving over real TCP -- copy versus page transfer, against the ceiling. The sender is
 * the sink's source service (source.ts: plain node:net streaming a preallocated buffer), in another
 * OS process on 127.0.0.1 or on another host with --peer.
 *
 * The receivers, one connection each:
 *   copy      a loanout kernel socket; recv(proc, va, size) copies each byte out of the receive area
 *             into the process's page-aligned buffer (uiomove)
 *   transfer  the same, with { mode: 'transfer', tail: 'zero-fill' }: the pages node:net read into
 *             become the process's pages at va -- a read's partly filled last page too, zeroed after
 *             the bytes -- so nothing is copied
 *   raw       plain node:net reading with `onread` straight into a preallocated buffer of `size` bytes:
 *             what a program without a kernel in between gets, the ceiling
 * Both kernel sockets have the same receive area (8 x 64 KiB). One operation asks the source for about
 * `batch` bytes and ends when they have all been received; the source then has nothing in flight, so
 * no case leaves a backlog for the next.
 */
import net from 'node:net';
import { Kernel, type Proc } from '@loanout/core';
import { type RecvOptions, type Socket, sockConnect } from '@loanout/sockets';
import { MiB } from './plan.js';
import type { BenchCase } from './runner.js';
import { delta, type SinkSession, type SinkStats } from './sink-client.js';
import { SUITES } from './suites.js';

/* the kernel receivers' receive area */
const RECV_AREA = { recvChunkBytes: 64 * 1024, recvChunks: 8 };

export interface RecvBench {
  sink: SinkSession;
  before: SinkStats;
  kernel: Kernel;
  proc: Proc;
  /* the process's receive buffer: page-aligned, as large as the largest size */
  va: number;
  /* where the process writes its requests to the source (8 bytes, sent by copy) */
  reqVa: number;
  sockets: Record<'copy' | 'transfer', Socket>;
  raw: RawReceiver;
  /* bytes received, by mode */
  received: Record<string, number>;
}

/** what the receivers got and the source sent; what the kernel copied and moved */
export interface RecvCheck {
  received: number;
  sent: number;
  copiedBytes: number;
  transferredBytes: number;
}

/*
 * RawReceiver: plain node:net reading through onread into a preallocated buffer (its first `size`
 * bytes, the size being measured), counting what arrives.
 */
class RawReceiver {
  private got = 0;
  private want = 0;
  private done: (() => void) | null = null;
  size = 64 * 1024;
  private constructor(readonly sock: net.Socket) {}

  static connect(host: string, port: number): Promise<RawReceiver> {
    const buf = Buffer.allocUnsafe(MiB);
    let r: RawReceiver | null = null;
    const onread = {
      buffer: () => buf.subarray(0, r?.size ?? buf.length),
      callback: (n: number) => r!.onRead(n),
    };
    return new Promise((resolve, reject) => {
      const s = net.connect({ host, port, onread });
      r = new RawReceiver(s);
      s.once('error', reject);
      s.once('connect', () => {
        s.off('error', reject);
        s.setNoDelay(true);
        resolve(r!);
      });
    });
  }

  private onRead(n: number): boolean {
    this.got += n;
    if (this.got >= this.want && this.done !== null) {
      const d = this.done;
      this.done = null;
      d();
    }
    return true;
  }

  /* receive: ask for n bytes and wait for all of them */
  receive(n: number): Promise<void> {
    this.got = 0;
    this.want = n;
    return new Promise((resolve) => {
      this.done = resolve;
      this.sock.write(request(n));
    });
  }
}

function request(n: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeDoubleLE(n, 0);
  return b;
}

/**
 * setupRecv: a kernel with one process and its receive buffer, a kernel socket per kernel mode and a
 * raw receiver, all connected to the sink's source.
 * => throws if a connection fails (those made are closed)
 */
export async function setupRecv(sink: SinkSession, maxSize: number): Promise<RecvBench> {
  const port = sink.port('source');
  const host = sink.host;
  const before = await sink.stats();
  const kernel = new Kernel({ physPages: 16384, swapPages: 0 });
  const proc = kernel.createProcess();
  const va = proc.mmap(maxSize);
  const reqVa = proc.mmap(4096);
  const sockets: Partial<RecvBench['sockets']> = {};
  try {
    for (const mode of ['copy', 'transfer'] as const)
      sockets[mode] = await sockConnect(kernel, { host, port, ...RECV_AREA });
    const raw = await RawReceiver.connect(host, port);
    return {
      sink,
      before,
      kernel,
      proc,
      va,
      reqVa,
      sockets: sockets as RecvBench['sockets'],
      raw,
      received: {},
    };
  } catch (err) {
    for (const so of Object.values(sockets)) so.destroy();
    throw err;
  }
}

/**
 * recvCases: copy, transfer and raw at each size: one operation receives about `batch` bytes in
 * recvs of `size` bytes (the last may be shorter)
 */
export function recvCases(b: RecvBench, sizes: number[], batch: number): BenchCase[] {
  const out: BenchCase[] = [];
  /* one operation at a time per receiver: a connection's requests must not overlap (benny calls each
     case once as it registers it, without waiting) */
  const lines = new Map<string, Promise<unknown>>();
  const serial = (mode: string, op: () => Promise<void>) => () => {
    const next = (lines.get(mode) ?? Promise.resolve()).then(op, op);
    lines.set(
      mode,
      next.catch(() => undefined),
    );
    return next;
  };
  for (const size of sizes) {
    const n = Math.max(1, Math.round(batch / size)) * size;
    for (const mode of SUITES.recv.modes) {
      const op = mode === 'raw' ? rawOp(b, size, n) : kernelOp(b, mode as 'copy' | 'transfer', size, n);
      out.push({ suite: 'recv', mode, size, perOp: n / size, bytesPerSend: size, run: serial(mode, op) });
    }
  }
  return out;
}

function kernelOp(b: RecvBench, mode: 'copy' | 'transfer', size: number, n: number): () => Promise<void> {
  const so = b.sockets[mode];
  const opts: RecvOptions = mode === 'transfer' ? { mode, tail: 'zero-fill' } : { mode };
  return async () => {
    await b.proc.write(b.reqVa, request(n));
    await so.send(b.proc, b.reqVa, 8, { mode: 'copy' });
    let got = 0;
    while (got < n) {
      const k = await so.recv(b.proc, b.va, Math.min(size, n - got), opts);
      if (k === 0) throw new Error(`recv ${mode}: the source closed the connection`);
      got += k;
    }
    b.received[mode] = (b.received[mode] ?? 0) + n;
  };
}

function rawOp(b: RecvBench, size: number, n: number): () => Promise<void> {
  return async () => {
    b.raw.size = size;
    await b.raw.receive(n);
    b.received.raw = (b.received.raw ?? 0) + n;
  };
}

/**
 * closeRecv: close every connection and check that the receivers got what the source sent.
 * => never leaves a connection open; null if the sink couldn't be asked
 */
export async function closeRecv(b: RecvBench): Promise<RecvCheck | null> {
  try {
    const s = b.sockets.copy.stats();
    const t = b.sockets.transfer.stats();
    await Promise.all(
      Object.values(b.sockets).map((so) => so.close({ linger: 5_000 }).catch(() => undefined)),
    );
    b.raw.sock.destroy();
    const after = await b.sink.settle();
    return {
      received: Object.values(b.received).reduce((a, x) => a + x, 0),
      sent: delta(b.before, after, 'source').bytes ?? 0,
      copiedBytes: s.receivedByCopy + t.receivedByCopy,
      transferredBytes: s.receivedByTransfer + t.receivedByTransfer,
    };
  } catch {
    return null;
  } finally {
    for (const so of Object.values(b.sockets)) so.destroy();
    b.raw.sock.destroy();
    b.proc.exit();
  }
}
