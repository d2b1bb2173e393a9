/*
 * helpers.ts: shared pieces of the socket tests -- kernels that are checked for leaks after every
 * test, plain node:net peers (the "other side" of a real TCP connection), byte patterns and hashes,
 * and bounded waits.
 *
 * A Scope collects everything a test opens (kernels, sockets, listeners, echo servers, plain servers
 * and their connections) and, in afterEach, closes it all and then checks that no loan, wired page
 * (beyond the mbuf cluster pool's own), kernel mapping or receive area outlived its socket.
 */
import { createHash, randomFillSync } from 'node:crypto';
import net from 'node:net';
import {
  Kernel,
  KernelError,
  type KernelErrorCode,
  type KernelOptions,
  PAGE_SIZE,
  type Proc,
} from '@loanout/core';
import { type MbufOptions, mbufInit, mbufStats } from '@loanout/mbuf';
import { expect } from 'vitest';
import {
  type ConnectOptions,
  createEchoServer,
  type EchoServer,
  type EchoServerOptions,
  type EchoStats,
  type Listener,
  type SendMode,
  type Socket,
  sockConnect,
} from '../src/index.js';

export const KiB = 1024;
export const MiB = 1024 * 1024;
export { PAGE_SIZE };

/* pattern: n bytes that depend on seed and position (every page and offset differs) */
export function pattern(n: number, seed: number): Buffer {
  const b = Buffer.allocUnsafe(n);
  for (let i = 0; i < n; i++) b[i] = (seed * 131 + i * 7 + (i >> 12) * 13 + 1) & 0xff;
  return b;
}

/* random: n random bytes */
export function random(n: number): Buffer {
  return randomFillSync(Buffer.allocUnsafe(n));
}

export function sha256(...parts: Uint8Array[]): string {
  const h = createHash('sha256');
  for (const p of parts) h.update(p);
  return h.digest('hex');
}

/* userMemory: map len bytes in p and fill them with `bytes` (or a pattern); returns the va */
export async function userMemory(p: Proc, len: number, bytes: Uint8Array = pattern(len, 1)): Promise<number> {
  const va = p.mmap(len);
  await p.write(va, bytes.subarray(0, len));
  return va;
}

/* expectError: the promise (or call) fails with a KernelError carrying `code` */
export async function expectError(
  p: Promise<unknown> | (() => unknown),
  code: KernelErrorCode,
): Promise<KernelError> {
  let caught: unknown = null;
  try {
    await (typeof p === 'function' ? p() : p);
  } catch (err) {
    caught = err;
  }
  expect(caught).toBeInstanceOf(KernelError);
  expect((caught as KernelError).code).toBe(code);
  return caught as KernelError;
}

/* failure: the KernelError a promise rejects with (fails the test if it resolves or throws another) */
export async function failure(p: Promise<unknown>): Promise<KernelError> {
  let caught: unknown = null;
  try {
    await p;
  } catch (err) {
    caught = err;
  }
  expect(caught).toBeInstanceOf(KernelError);
  return caught as KernelError;
}

/* settled: has the promise settled yet? (after letting pending callbacks and I/O run once) */
export async function settled(p: Promise<unknown>): Promise<boolean> {
  let done = false;
  p.then(
    () => {
      done = true;
    },
    () => {
      done = true;
    },
  );
  await new Promise<void>((r) => setImmediate(r));
  return done;
}

/* tick: let the event loop run for a moment (I/O, timers) */
export function tick(ms = 5): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/* until: wait (bounded) until cond() holds; throws naming `what` if it never does */
export async function until(cond: () => boolean, what: string, tries = 1000): Promise<void> {
  for (let i = 0; i < tries; i++) {
    if (cond()) return;
    await tick(i < 20 ? 1 : 10);
  }
  throw new Error(`timed out waiting until ${what}`);
}

/*
 * stalled: wait (bounded) until progress() has not changed for `quiet` looks in a row, 10 ms apart --
 * a transfer that is stuck (a peer that does not read has filled every buffer on the way)
 */
export async function stalled(progress: () => number, what: string, quiet = 20): Promise<void> {
  let last = progress();
  let same = 0;
  for (let i = 0; i < 2000; i++) {
    await tick(10);
    const now = progress();
    same = now === last ? same + 1 : 0;
    last = now;
    if (same >= quiet) return;
  }
  throw new Error(`${what} never stalled`);
}

/* the counters that must be back at rest once every socket of a kernel is closed */
export interface Rest {
  loanedPages: number;
  wiredBeyondPool: number;
  kernelVaBeyondPool: number;
  kvaPagesInUse: number;
  kvaWaiting: number;
  clustersInUse: number;
}

export function rest(k: Kernel): Rest {
  const s = k.stats();
  const m = mbufStats(k);
  return {
    loanedPages: s.loanedPages,
    wiredBeyondPool: s.wiredPages - m.clusterPoolPages,
    kernelVaBeyondPool: s.kernelVaPages - m.clusterPoolPages,
    kvaPagesInUse: m.kvaPagesInUse,
    kvaWaiting: m.kvaWaiting,
    clustersInUse: m.clustersInUse,
  };
}

/* expectAtRest: nothing of any socket outlives it; the kernel's books balance */
export function expectAtRest(k: Kernel): void {
  expect(rest(k)).toEqual({
    loanedPages: 0,
    wiredBeyondPool: 0,
    kernelVaBeyondPool: 0,
    kvaPagesInUse: 0,
    kvaWaiting: 0,
    clustersInUse: 0,
  });
  k.checkInvariants();
}

/* socket options sockConnect, sockListen and createEchoServer all refuse (EINVAL) */
export const BAD_SOCKET_OPTIONS: Record<string, unknown>[] = [
  { sendHighWater: Number.NaN },
  { sendHighWater: 0 },
  { sendHighWater: -1 },
  { sendHighWater: '1' },
  { sendHighWater: 1.5 },
  { autoThreshold: 'x' },
  { autoThreshold: -1 },
  { autoThreshold: Number.NaN },
  { recvChunkBytes: 1000 },
  { recvChunkBytes: 2 ** 40 },
  { recvChunks: 1 },
  { recvChunks: 2 ** 40 },
  { recvChunks: '4' },
  /* null is a value, not "left out" (only undefined is): refused, never the default */
  { sendHighWater: null },
  { autoThreshold: null },
  { recvChunkBytes: null },
  { recvChunks: null },
];

/* a plain node:net server (the peer), with every connection it accepted */
export interface Peer {
  readonly server: net.Server;
  readonly port: number;
  readonly conns: net.Socket[];
  close(): Promise<void>;
}

/* a plain node:net socket's bytes until end (or close), and how it ended */
export interface Drained {
  bytes: Buffer;
  error: NodeJS.ErrnoException | null;
}

export function drain(s: net.Socket): Promise<Drained> {
  const parts: Buffer[] = [];
  let error: NodeJS.ErrnoException | null = null;
  s.on('data', (d: Buffer) => parts.push(d));
  s.on('error', (e) => {
    error = e;
  });
  return new Promise((resolve) => s.once('close', () => resolve({ bytes: Buffer.concat(parts), error })));
}

/* hashing reader: a plain socket's sha256 and length until it closes (without keeping the bytes) */
export function hashUntilClose(
  s: net.Socket,
): Promise<{ hash: string; length: number; error: Error | null }> {
  const h = createHash('sha256');
  let length = 0;
  let error: Error | null = null;
  s.on('data', (d: Buffer) => {
    h.update(d);
    length += d.length;
  });
  s.on('error', (e) => {
    error = e;
  });
  return new Promise((resolve) => s.once('close', () => resolve({ hash: h.digest('hex'), length, error })));
}

/* freePort: a port on 127.0.0.1 that nobody listens on (one we had and closed again) */
export async function freePort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as net.AddressInfo).port;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

/* expectPortFree: nothing listens on 127.0.0.1:port -- we can listen there ourselves (and let it go) */
export async function expectPortFree(port: number): Promise<void> {
  const srv = net.createServer();
  const err = await new Promise<Error | null>((resolve) => {
    srv.once('error', resolve);
    srv.listen(port, '127.0.0.1', () => resolve(null));
  });
  if (err === null) await new Promise<void>((r) => srv.close(() => r()));
  expect(err).toBeNull();
}

/*
 * zeroCopyEcho: a zerocopy echo server (with opts; its own kernel of 8192 pages unless given one) and
 * clients that each write their pieces -- a pause of `pause.ms` after every `pause.every`th write --
 * then half-close. Asserts that every client gets exactly its bytes back, that all of them came in by
 * page transfer and went out by loan with 0 bytes copied either way, and that nothing is left after;
 * returns the server's stats
 */
export async function zeroCopyEcho(
  scope: Scope,
  opts: EchoServerOptions,
  clients: Buffer[][],
  pause: { ms: number; every: number },
): Promise<EchoStats> {
  const kernel = opts.kernel ?? scope.kernel({ physPages: 8192 });
  const echo = scope.echo(await createEchoServer({ port: 0, ...opts, kernel, mode: 'zerocopy' }));
  const one = async (pieces: Buffer[]) => {
    const c = scope.plain(await plainConnect(echo.port));
    const back = hashUntilClose(c);
    for (const [i, piece] of pieces.entries()) {
      c.write(piece);
      if (i % pause.every === 0) await tick(pause.ms);
    }
    c.end();
    const got = await back;
    expect(got.error).toBeNull();
    expect(got.length).toBe(pieces.reduce((n, b) => n + b.length, 0));
    expect(got.hash).toBe(sha256(...pieces));
  };
  await Promise.all(clients.map(one));
  await until(() => echo.stats().activeConnections === 0, 'the connections end');
  const st = echo.stats();
  const total = clients.flat().reduce((n, b) => n + b.length, 0);
  expect(st.bytesEchoed).toBe(total);
  expect({ in: st.recvCopiedBytes, out: st.copiedBytes }).toEqual({ in: 0, out: 0 });
  expect({ in: st.recvTransferredBytes, out: st.loanedBytes }).toEqual({ in: total, out: total });
  await echo.close();
  expectAtRest(kernel);
  return st;
}

/* plainConnect: a plain node:net client connected to 127.0.0.1:port */
/*
 * connectAndDrain: a plain client that sends `hello` and drains until the socket closes, collecting
 * errors from the connect on: for servers that may reset a connection before the client has seen its
 * 'connect' (on loopback the server's accept can run first).
 */
export function connectAndDrain(port: number, hello?: string): Promise<Drained> {
  const s = net.connect({ host: '127.0.0.1', port });
  if (hello !== undefined) s.write(hello);
  return drain(s);
}

export function plainConnect(port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: '127.0.0.1', port });
    s.once('error', reject);
    s.once('connect', () => {
      s.off('error', reject);
      resolve(s);
    });
  });
}

/*
 * Scope: everything a test opened, closed in afterEach; then each kernel must be at rest.
 */
export class Scope {
  private kernels: Kernel[] = [];
  private closers: (() => Promise<unknown> | unknown)[] = [];

  /* kernel: a kernel (16 MiB by default) whose mbufs are set up with `mbuf` options if given */
  kernel(opts: KernelOptions = {}, mbuf?: MbufOptions): Kernel {
    const k = new Kernel({ physPages: 4096, swapPages: 0, ...opts });
    if (mbuf !== undefined) mbufInit(k, mbuf);
    this.kernels.push(k);
    return k;
  }

  /* watch: check this kernel (made elsewhere, an echo server's say) at the end too */
  watch(k: Kernel): Kernel {
    this.kernels.push(k);
    return k;
  }

  defer(fn: () => Promise<unknown> | unknown): void {
    this.closers.push(fn);
  }

  socket(so: Socket): Socket {
    this.defer(() => so.close({ linger: 0 }));
    return so;
  }

  listener(l: Listener): Listener {
    this.defer(() => l.close());
    return l;
  }

  echo(e: EchoServer): EchoServer {
    this.defer(() => e.close());
    this.watch(e.kernel);
    return e;
  }

  plain(s: net.Socket): net.Socket {
    this.defer(() => s.destroy());
    return s;
  }

  /* peer: a plain node:net server on 127.0.0.1, port 0; onConn sees each accepted socket */
  async peer(onConn: (s: net.Socket) => void = () => {}): Promise<Peer> {
    const conns: net.Socket[] = [];
    const server = net.createServer((s) => {
      conns.push(s);
      s.on('error', () => {});
      onConn(s);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as net.AddressInfo).port;
    let closed: Promise<void> | null = null;
    const peer: Peer = {
      server,
      port,
      conns,
      close: () => {
        closed ??= new Promise<void>((r) => {
          server.close(() => r());
          for (const s of conns) s.destroy();
        });
        return closed;
      },
    };
    this.defer(() => peer.close());
    return peer;
  }

  /* cleanup: close everything (last opened first), then every kernel must be at rest */
  async cleanup(): Promise<void> {
    const closers = this.closers.splice(0).reverse();
    const kernels = this.kernels.splice(0);
    for (const c of closers) await c();
    for (const k of kernels) {
      await until(() => rest(k).loanedPages === 0 && rest(k).kvaPagesInUse === 0, 'loans end', 200).catch(
        () => {},
      );
      expectAtRest(k);
    }
  }
}

/* a toy-kernel socket, the plain node:net peer it is connected to, and the peer's end of the connection */
export interface Pair {
  so: Socket;
  peer: Peer;
  remote: net.Socket;
}

/*
 * pair: a toy-kernel socket connected to a plain node:net peer; onConn sees the peer's end first
 * (pause it there for a peer that does not read)
 *  => the socket, peer and peer's end are the scope's: closed in its cleanup
 */
export async function pair(
  scope: Scope,
  k: Kernel,
  onConn: (s: net.Socket) => void = () => {},
  opts: Omit<ConnectOptions, 'port'> = {},
): Promise<Pair> {
  const peer = await scope.peer(onConn);
  const so = scope.socket(await sockConnect(k, { ...opts, port: peer.port }));
  await until(() => peer.conns.length > 0, 'the peer accepts');
  return { so, peer, remote: peer.conns[0] };
}

/*
 * readPair: a pair whose peer's end, as it is accepted, is paused (if `paused`) and then handed to
 * `read` (drain, hashUntilClose), so the reader sees every byte and how the stream ended
 *  => { so, peer, remote } as pair(), and got: what read returned (undefined without a read)
 *  => a paused peer holds what arrives until remote.resume()
 */
async function readPair<R>(
  scope: Scope,
  k: Kernel,
  opts: Omit<ConnectOptions, 'port'>,
  paused: boolean,
  read: (s: net.Socket) => R,
): Promise<Pair & { got: R }> {
  let got!: R;
  const p = await pair(
    scope,
    k,
    (s) => {
      if (paused) s.pause();
      got = read(s);
    },
    opts,
  );
  return { ...p, got };
}

/*
 * pausedPair: a pair whose peer does not read until remote.resume(); `read`, if given, is started on
 * the peer's end at once (it sees nothing before the resume)
 *  => { so, peer, remote } as pair(), and got: what read returned (undefined without a read)
 */
export function pausedPair(
  scope: Scope,
  k: Kernel,
  opts?: Omit<ConnectOptions, 'port'>,
): Promise<Pair & { got: undefined }>;
export function pausedPair<R>(
  scope: Scope,
  k: Kernel,
  opts: Omit<ConnectOptions, 'port'>,
  read: (s: net.Socket) => R,
): Promise<Pair & { got: R }>;
export function pausedPair(
  scope: Scope,
  k: Kernel,
  opts: Omit<ConnectOptions, 'port'> = {},
  read: (s: net.Socket) => unknown = () => undefined,
): Promise<Pair & { got: unknown }> {
  return readPair(scope, k, opts, true, read);
}

/*
 * drainedPair: a pair whose peer reads everything at once
 *  => { so, peer, remote } as pair(), and got: the peer's bytes and how its end closed (see drain)
 */
export function drainedPair(
  scope: Scope,
  k: Kernel,
  opts: Omit<ConnectOptions, 'port'> = {},
): Promise<Pair & { got: Promise<Drained> }> {
  return readPair(scope, k, opts, false, drain);
}

export interface EchoRun {
  bytes: number;
  sent: string;
  echoed: string;
}

/*
 * echoClient: a process on kernel k that sends `total` random bytes to an echo server at port (by
 * mode, from two windows of `window` bytes used in turn) while it reads the echo back into a third;
 * returns the sha256 of what it sent and of what came back. Closes its socket when done.
 */
export async function echoClient(
  k: Kernel,
  port: number,
  total: number,
  mode: SendMode,
  window = MiB,
): Promise<EchoRun> {
  const p = k.createProcess();
  const so = await sockConnect(k, { port });
  try {
    const out = [p.mmap(window), p.mmap(window)];
    const back = p.mmap(window);
    const sent = createHash('sha256');
    const echoed = createHash('sha256');
    const sending = (async () => {
      const pending: (Promise<void> | null)[] = [null, null];
      for (let off = 0, i = 0; off < total; off += window, i ^= 1) {
        const n = Math.min(window, total - off);
        const piece = random(n);
        sent.update(piece);
        if (pending[i] !== null) await pending[i];
        await p.write(out[i], piece);
        pending[i] = (await so.send(p, out[i], n, { mode })).done;
      }
      await Promise.all(pending);
    })();
    /* a failed send must not leave the reader waiting for bytes that never come */
    sending.catch(() => so.destroy());
    let bytes = 0;
    while (bytes < total) {
      const n = await so.recv(p, back, Math.min(window, total - bytes));
      if (n === 0) break;
      echoed.update(await p.read(back, n));
      bytes += n;
    }
    await sending;
    await so.close();
    return { bytes, sent: sent.digest('hex'), echoed: echoed.digest('hex') };
  } finally {
    so.destroy();
    p.exit();
  }
}
