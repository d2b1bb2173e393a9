/*
 * tcp.ts: copy versus loan over real TCP -- the sender here, the receiver in the sink's discard
 * service (discard.ts): another OS process on 127.0.0.1, or another host with --peer.
 *
 * The sender is a loanout kernel: one process with a filled 1 MiB buffer and one connected socket
 * per mode (sockConnect); a send is `so.send(proc, va, size, { mode })` -- copy into clusters, loan
 * the pages, or auto -- and Node writes the mbufs' views. The ceiling, `raw`, is what Node alone does:
 * plain node:net writing views of one preallocated buffer, no kernel, with the same send-buffer rule as
 * the kernel socket (up to 1 MiB handed to Node and not yet taken; a send that doesn't fit waits), so
 * both pipeline alike and only the kernel's work differs.
 *
 * One operation sends about `batch` bytes as back-to-back sends of `size` and waits until the last
 * is in the host's hands (its write callback) -- so each operation ends with nothing queued, and one
 * case's backlog never leaks into the next. The sink counts what arrives; at the end what it counted
 * during the suite must match what was sent, and its CPU use shows whether it had time to spare.
 */
import net from 'node:net';
import { Kernel, type Proc } from '@loanout/core';
import { type Socket, sockConnect } from '@loanout/sockets';
import { MiB, sendsPerOp } from './plan.js';
import type { BenchCase } from './runner.js';
import { delta, type SinkSession, type SinkStats } from './sink-client.js';
import { type Mode, SUITES } from './suites.js';

/* the send buffer both the kernel sockets (their default) and the raw sender allow */
const HIWAT = MiB;

/*
 * RawSender: plain node:net writes with the kernel socket's send-buffer rule (sockbuf.ts): a write
 * that would take the bytes Node hasn't taken yet over HIWAT waits for room (an empty buffer takes
 * anything), first come first served; bytes are taken when the host socket has them -- as write()
 * returns if node:net then holds none of ours, else at the write callback (uipc_socket.ts, transmit).
 */
export class RawSender {
  private cc = 0;
  private readonly waiters: { n: number; resolve: () => void; reject: (e: Error) => void }[] = [];
  private error: Error | null = null;

  constructor(readonly sock: net.Socket) {
    sock.on('error', (err) => this.fail(err));
    sock.on('close', () => this.fail(new Error('raw sender: connection closed')));
  }

  /*
   * send: queue a view; resolves once queued, with `done`: its write callback.
   * => throws if the connection failed
   */
  async send(view: Buffer): Promise<{ done: Promise<void> }> {
    const n = view.length;
    if (this.error !== null) throw this.error;
    if (!(this.waiters.length === 0 && (this.cc === 0 || this.cc + n <= HIWAT))) {
      await new Promise<void>((resolve, reject) => this.waiters.push({ n, resolve, reject }));
    }
    this.cc += n;
    let taken = false;
    const done = new Promise<void>((resolve, reject) => {
      this.sock.write(view, (err) => {
        if (!taken) this.drop(n);
        if (err) reject(err);
        else resolve();
      });
    });
    done.catch(() => undefined);
    /* the kernel socket's rule for when the host has taken a chunk: at once if node:net holds none */
    if (this.hostTookAll()) {
      taken = true;
      this.drop(n);
    }
    return { done };
  }

  /* hostTookAll: node:net holds no byte of ours as write() returns (the host socket took them all) */
  private hostTookAll(): boolean {
    const s = this.sock;
    return s.writableLength === 0 && !s.writableCorked && s.errored === null && !s.destroyed;
  }

  private drop(n: number): void {
    this.cc -= n;
    while (this.waiters.length > 0 && (this.cc === 0 || this.cc + this.waiters[0].n <= HIWAT)) {
      this.waiters.shift()!.resolve();
    }
  }

  private fail(err: Error): void {
    this.error ??= err;
    for (const w of this.waiters.splice(0)) w.reject(err);
  }
}

export interface TcpBench {
  sink: SinkSession;
  /* the sink's counters before the suite */
  before: SinkStats;
  kernel: Kernel;
  proc: Proc;
  va: number;
  sockets: Record<'copy' | 'loan' | 'auto', Socket>;
  raw: RawSender;
  rawBuf: Buffer;
  /* bytes sent, by mode */
  sent: Partial<Record<Mode, number>>;
}

export interface TcpCheck {
  sent: number;
  received: number;
  /* during a raw burst at the ceiling: sink and sender CPU time / wall time, % of one core */
  receiverCpuPct: number;
  senderCpuPct: number;
  burstMbps: number;
}

/**
 * setupTcp: connect one kernel socket per kernel mode and one raw socket to the sink's discard port.
 * => throws if a connection fails (those made are closed)
 */
export async function setupTcp(sink: SinkSession): Promise<TcpBench> {
  const port = sink.port('discard');
  const host = sink.host;
  const before = await sink.stats();
  const kernel = new Kernel({ physPages: 16384, swapPages: 0 });
  const proc = kernel.createProcess();
  const va = proc.mmap(MiB);
  const rawBuf = Buffer.alloc(MiB);
  for (let i = 0; i < MiB; i++) rawBuf[i] = (i * 131) & 0xff;
  await proc.write(va, rawBuf);
  const sockets: Partial<TcpBench['sockets']> = {};
  try {
    for (const mode of ['copy', 'loan', 'auto'] as const)
      sockets[mode] = await sockConnect(kernel, { host, port });
    const raw = new RawSender(await connectRaw(host, port));
    return { sink, before, kernel, proc, va, sockets: sockets as TcpBench['sockets'], raw, rawBuf, sent: {} };
  } catch (err) {
    for (const so of Object.values(sockets)) so.destroy();
    throw err;
  }
}

function connectRaw(host: string, port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const sock = net.connect({ host, port });
    sock.once('error', reject);
    sock.once('connect', () => {
      sock.off('error', reject);
      sock.setNoDelay(true);
      resolve(sock);
    });
  });
}

/*
 * tcpCases: copy, loan, auto and raw at each size.
 * => one operation is ceil(batch / size) sends, ending when the last is in the host's hands
 */
export function tcpCases(b: TcpBench, sizes: number[], batch: number): BenchCase[] {
  const out: BenchCase[] = [];
  for (const size of sizes) {
    for (const mode of SUITES.tcp.modes) {
      const n = sendsPerOp(size, batch);
      const run = mode === 'raw' ? rawOp(b, size, n) : kernelOp(b, mode, size, n);
      out.push({ suite: 'tcp', mode, size, perOp: n, bytesPerSend: size, run });
    }
  }
  return out;
}

function kernelOp(b: TcpBench, mode: Mode, size: number, n: number): () => Promise<void> {
  const so = b.sockets[mode as 'copy' | 'loan' | 'auto'];
  const opts = { mode: mode as 'copy' | 'loan' | 'auto' };
  return async () => {
    let last: Promise<void> = Promise.resolve();
    for (let i = 0; i < n; i++) last = (await so.send(b.proc, b.va, size, opts)).done;
    await last;
    b.sent[mode] = (b.sent[mode] ?? 0) + n * size;
  };
}

function rawOp(b: TcpBench, size: number, n: number): () => Promise<void> {
  const view = b.rawBuf.subarray(0, size);
  return async () => {
    let last: Promise<void> = Promise.resolve();
    for (let i = 0; i < n; i++) last = (await b.raw.send(view)).done;
    await last;
    b.sent.raw = (b.sent.raw ?? 0) + n * size;
  };
}

/*
 * rawBurst: send `bytes` raw in 256 KiB sends and see how busy each side was meanwhile -- if the
 * sink is well under one core while the sender saturates the link, the sink isn't the bottleneck.
 */
async function rawBurst(b: TcpBench, bytes: number): Promise<Omit<TcpCheck, 'sent' | 'received'>> {
  const size = 256 * 1024;
  const op = rawOp(b, size, Math.ceil(bytes / size));
  const r0 = await b.sink.stats();
  const s0 = process.cpuUsage();
  const t0 = performance.now();
  await op();
  const wall = performance.now() - t0;
  const s1 = process.cpuUsage(s0);
  const r1 = await b.sink.stats();
  const rBusy = r1.cpuMs - r0.cpuMs;
  const rWall = r1.wallMs - r0.wallMs;
  return {
    receiverCpuPct: (100 * rBusy) / rWall,
    senderCpuPct: (100 * (s1.user + s1.system)) / 1000 / wall,
    burstMbps: (Math.ceil(bytes / size) * size) / 1e3 / wall,
  };
}

/**
 * closeTcp: measure the sink's headroom with a raw burst, close every connection, and check the sink
 * got every byte sent during the suite.
 * => never leaves a connection open; returns null if the check couldn't be made
 */
export async function closeTcp(b: TcpBench, burstBytes: number): Promise<TcpCheck | null> {
  try {
    const burst = await rawBurst(b, burstBytes);
    await Promise.all(Object.values(b.sockets).map((so) => so.close({ linger: 5_000 })));
    await new Promise<void>((resolve) => {
      b.raw.sock.once('close', () => resolve());
      b.raw.sock.end();
      setTimeout(() => b.raw.sock.destroy(), 5_000).unref();
    });
    const after = await b.sink.settle();
    const sent = Object.values(b.sent).reduce((a, x) => a + x, 0);
    return { sent, received: delta(b.before, after, 'discard').bytes ?? 0, ...burst };
  } catch {
    return null;
  } finally {
    for (const so of Object.values(b.sockets)) so.destroy();
    b.raw.sock.destroy();
  }
}
