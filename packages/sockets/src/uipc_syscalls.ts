/*
 * uipc_syscalls.ts: making sockets -- connect, and listen + accept (NetBSD's kern/uipc_syscalls.c).
 *
 * Each socket gets its receive area from the kernel's memory before it reads a byte, and gives it
 * back when it closes; a listener closes the connections it accepted when it closes itself. Every
 * option is checked (sockopt.ts) before a port is bound, a connection made or a page taken.
 */
import type net from 'node:net';
import { checkKernel, type Kernel, KernelError } from '@loanout/core';
import { adoptAccepted, connectTcp, listenTcp } from './net_glue.js';
import { RecvBuffer } from './sockbuf.js';
import { connectConfig, type ListenConfig, listenConfig, type SocketConfig } from './sockopt.js';
import { Socket, type SocketOptions } from './uipc_socket.js';

/** Options of sockConnect: where to connect, and the socket's options. */
export interface ConnectOptions extends SocketOptions {
  /** default 127.0.0.1 */
  host?: string;
  /** the port to connect to: an integer in 1..65535 */
  port: number;
}

/** Options of sockListen: where to listen, how many at once, and each socket's options. */
export interface ListenOptions extends SocketOptions {
  /** default 127.0.0.1 */
  host?: string;
  /** default 0: any free port */
  port?: number;
  /**
   * connections beyond this many open ones are refused politely: accepted, closed with a FIN (not a
   * reset), whatever they send read and dropped, and counted in `refused`; a positive integer,
   * default 1024
   */
  maxConnections?: number;
}

/** Listener: a listening socket (sockListen); each connection it accepts goes to its handler. */
export interface Listener {
  /** the address it listens on */
  readonly host: string;
  /** the port it listens on (the one chosen, for port 0) */
  readonly port: number;
  /** open connections */
  readonly connections: number;
  /** connections reset at accept: no kernel memory for their receive area, or the listener closing */
  readonly dropped: number;
  /** connections refused politely because maxConnections were open */
  readonly refused: number;
  /** stop listening, close every accepted connection, and wait until all are released */
  close(): Promise<void>;
}

async function recvArea(kernel: Kernel, cfg: SocketConfig): Promise<RecvBuffer> {
  return RecvBuffer.create(kernel, cfg.recvChunkBytes, cfg.recvChunks);
}

/**
 * sockConnect: a socket connected over real TCP to host:port (connect(2)).
 * => options as SocketOptions says; the receive area may be as large as the kernel's RAM
 * => throws EINVAL (bad arguments: checked before connecting or taking memory), ECONNREFUSED,
 *    ENOMEM (no run of free kernel memory for the receive area); then nothing is left allocated
 */
export async function sockConnect(kernel: Kernel, opts: ConnectOptions): Promise<Socket> {
  checkKernel('sockConnect', kernel);
  const cfg = connectConfig('sockConnect', opts, kernel.uvm.pages.length);
  const rcv = await recvArea(kernel, cfg);
  let so: Socket | null = null;
  let tcp: net.Socket;
  try {
    tcp = await connectTcp(
      cfg.host,
      cfg.port,
      Socket.onread(() => so, rcv),
    );
  } catch (err) {
    rcv.release();
    throw err;
  }
  so = new Socket(kernel, tcp, rcv, cfg);
  return so;
}

/**
 * sockListen: accept connections on host:port, calling onConnection with each new socket
 * (listen(2) + accept(2)). The handler owns the socket: it should close it; a handler that throws
 * gets its socket destroyed (its peer sees a reset).
 * => opts: an object or undefined; maxConnections a positive integer (default 1024); the socket
 *    options apply to every accepted socket
 * => throws EINVAL (bad arguments: checked before the port is bound), EADDRINUSE
 */
export async function sockListen(
  kernel: Kernel,
  opts: ListenOptions | undefined,
  onConnection: (so: Socket) => void | Promise<void>,
): Promise<Listener> {
  checkKernel('sockListen', kernel);
  const cfg = listenConfig('sockListen', opts, kernel.uvm.pages.length, { port: 0, maxConnections: 1024 });
  if (typeof onConnection !== 'function')
    throw new KernelError('EINVAL', 'sockListen: handler is not a function');
  return listenChecked(kernel, cfg, onConnection);
}

/** listenChecked: sockListen with its options already checked (createEchoServer checks its own) */
export async function listenChecked(
  kernel: Kernel,
  cfg: ListenConfig,
  onConnection: (so: Socket) => void | Promise<void>,
): Promise<Listener> {
  const live = new Set<Socket>();
  /* a connection still setting up when close() runs must not slip in after it */
  const state: AcceptState = { closing: false, dropped: 0, refused: 0, refusing: new Set(), settingUp: 0 };
  const accept = (raw: net.Socket) => {
    /* a connection holds its slot from here: setting it up may sleep (memory for its receive area) */
    if (live.size + state.settingUp >= cfg.maxConnections) refuse(raw, state);
    else void acceptOne(kernel, cfg, raw, live, state, onConnection);
  };
  const server = await listenTcp(cfg.host, cfg.port, accept);
  const addr = server.address() as net.AddressInfo;
  return {
    host: cfg.host,
    port: addr.port,
    get connections() {
      return live.size;
    },
    get dropped() {
      return state.dropped;
    },
    get refused() {
      return state.refused;
    },
    close: async () => {
      state.closing = true;
      for (const raw of state.refusing) raw.destroy();
      const stopped = new Promise<void>((r) => server.close(() => r()));
      await Promise.all([...live].map((so) => so.close({ linger: 0 })));
      await stopped;
    },
  };
}

interface AcceptState {
  /* the listener is closing: a connection still setting up must not slip in after it */
  closing: boolean;
  dropped: number;
  refused: number;
  /* refused connections still saying goodbye */
  refusing: Set<net.Socket>;
  /* connections accepted and still being set up (their slot counts already) */
  settingUp: number;
}

/* how long a refused connection may take to close its side after our FIN */
const REFUSE_LINGER_MS = 2000;

/*
 * refuse: turn a connection away politely -- a FIN, not a reset: whatever it sends is read and
 * dropped until it closes its side too (or REFUSE_LINGER_MS pass), so that it learns it was refused
 * instead of losing data to a reset
 */
function refuse(raw: net.Socket, state: AcceptState): void {
  state.refused++;
  state.refusing.add(raw);
  raw.on('error', () => {});
  raw.once('close', () => state.refusing.delete(raw));
  raw.resume();
  raw.end();
  raw.once('end', () => raw.destroy());
  setTimeout(() => raw.destroy(), REFUSE_LINGER_MS).unref();
}

async function acceptOne(
  kernel: Kernel,
  cfg: SocketConfig,
  raw: net.Socket,
  live: Set<Socket>,
  state: AcceptState,
  onConnection: (so: Socket) => void | Promise<void>,
): Promise<void> {
  let rcv: RecvBuffer;
  state.settingUp++;
  try {
    rcv = await recvArea(kernel, cfg);
  } catch {
    state.dropped++;
    raw.destroy();
    return;
  } finally {
    state.settingUp--;
  }
  if (raw.destroyed || state.closing) {
    state.dropped++;
    rcv.release();
    raw.destroy();
    return;
  }
  let so: Socket | null = null;
  const tcp = adoptAccepted(
    raw,
    Socket.onread(() => so, rcv),
  );
  so = new Socket(kernel, tcp, rcv, cfg);
  const s = so;
  live.add(s);
  tcp.once('close', () => live.delete(s));
  try {
    await onConnection(s);
  } catch {
    s.destroy();
  }
}
