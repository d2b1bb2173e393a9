/*
 * uipc_syscalls.ts: making sockets -- connect, and listen + accept (NetBSD's kern/uipc_syscalls.c).
 *
 * Each socket gets its receive area from the kernel's memory before it reads a byte, and gives it
 * back when it closes; a listener closes the connections it accepted when it closes itself.
 */
import type net from 'node:net';
import { Kernel, KernelError } from '@loanout/core';
import { adoptAccepted, connectTcp, listenTcp } from './net_glue.js';
import { RecvBuffer } from './sockbuf.js';
import { Socket, type SocketOptions } from './uipc_socket.js';

export interface ConnectOptions extends SocketOptions {
  host?: string;
  port: number;
}

export interface ListenOptions extends SocketOptions {
  /* default 127.0.0.1 */
  host?: string;
  /* default 0: any free port */
  port?: number;
  /* connections beyond this are refused (closed at once); default 1024 */
  maxConnections?: number;
}

export interface Listener {
  readonly host: string;
  readonly port: number;
  /* open connections */
  readonly connections: number;
  /* stop listening, close every accepted connection, and wait until all are released */
  close(): Promise<void>;
}

const RECV_CHUNK = 32 * 1024;
const RECV_CHUNKS = 4;

function checkKernel(fn: string, kernel: unknown): asserts kernel is Kernel {
  if (!(kernel instanceof Kernel)) throw new KernelError('EINVAL', `${fn}: not a Kernel`);
}

function checkHostPort(fn: string, host: unknown, port: unknown, allowZero: boolean): void {
  if (typeof host !== 'string' || host === '')
    throw new KernelError('EINVAL', `${fn}: bad host ${String(host)}`);
  if (!Number.isInteger(port) || (port as number) < (allowZero ? 0 : 1) || (port as number) > 65535) {
    throw new KernelError('EINVAL', `${fn}: bad port ${String(port)}`);
  }
}

async function recvArea(opts: SocketOptions, kernel: Kernel): Promise<RecvBuffer> {
  return RecvBuffer.create(kernel, opts.recvChunkBytes ?? RECV_CHUNK, opts.recvChunks ?? RECV_CHUNKS);
}

/*
 * sockConnect: a socket connected over real TCP to host:port (connect(2)).
 * => throws EINVAL (bad arguments), ECONNREFUSED, ENOMEM (no kernel memory for the receive area);
 *    then nothing is left allocated
 */
export async function sockConnect(kernel: Kernel, opts: ConnectOptions): Promise<Socket> {
  checkKernel('sockConnect', kernel);
  const host = opts?.host ?? '127.0.0.1';
  checkHostPort('sockConnect', host, opts?.port, false);
  const rcv = await recvArea(opts, kernel);
  let so: Socket | null = null;
  let tcp: net.Socket;
  try {
    tcp = await connectTcp(
      host,
      opts.port,
      Socket.onread(() => so, rcv),
    );
  } catch (err) {
    rcv.release();
    throw err;
  }
  so = new Socket(kernel, tcp, rcv, opts);
  return so;
}

/*
 * sockListen: accept connections on host:port, calling onConnection with each new socket
 * (listen(2) + accept(2)). The handler owns the socket: it should close it; a handler that throws
 * gets its socket destroyed.
 * => throws EINVAL (bad arguments), EADDRINUSE
 */
export async function sockListen(
  kernel: Kernel,
  opts: ListenOptions,
  onConnection: (so: Socket) => void | Promise<void>,
): Promise<Listener> {
  checkKernel('sockListen', kernel);
  const host = opts?.host ?? '127.0.0.1';
  const port = opts?.port ?? 0;
  checkHostPort('sockListen', host, port, true);
  if (typeof onConnection !== 'function')
    throw new KernelError('EINVAL', 'sockListen: handler is not a function');
  const live = new Set<Socket>();
  /* a connection still setting up when close() runs must not slip in after it */
  const state = { closing: false };
  const accept = (raw: net.Socket) => void acceptOne(kernel, opts, raw, live, state, onConnection);
  const server = await listenTcp(host, port, accept);
  server.maxConnections = opts.maxConnections ?? 1024;
  const addr = server.address() as net.AddressInfo;
  return {
    host,
    port: addr.port,
    get connections() {
      return live.size;
    },
    close: async () => {
      state.closing = true;
      const stopped = new Promise<void>((r) => server.close(() => r()));
      await Promise.all([...live].map((so) => so.close({ linger: 0 })));
      await stopped;
    },
  };
}

async function acceptOne(
  kernel: Kernel,
  opts: SocketOptions,
  raw: net.Socket,
  live: Set<Socket>,
  state: { closing: boolean },
  onConnection: (so: Socket) => void | Promise<void>,
): Promise<void> {
  let rcv: RecvBuffer;
  try {
    rcv = await recvArea(opts, kernel);
  } catch {
    raw.destroy();
    return;
  }
  if (raw.destroyed || state.closing) {
    rcv.release();
    raw.destroy();
    return;
  }
  let so: Socket | null = null;
  const tcp = adoptAccepted(
    raw,
    Socket.onread(() => so, rcv),
  );
  so = new Socket(kernel, tcp, rcv, opts);
  const s = so;
  live.add(s);
  tcp.once('close', () => live.delete(s));
  try {
    await onConnection(s);
  } catch {
    s.destroy();
  }
}
