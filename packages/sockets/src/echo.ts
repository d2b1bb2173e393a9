/*
 * echo.ts: an echo server on the toy kernel -- the smallest real program that both receives and
 * sends, and so the natural place to watch copy versus zero-copy.
 *
 * Each connection is served by its own process (as a forking server would): it maps a ring of
 * buffers, receives into one, sends it back from the same memory, and moves to the next buffer. The
 * modes: `copy`, `loan` and `auto` copy every byte in (recv) and send it back by copy, by loan, or by
 * the auto threshold; before reusing a buffer they wait for that buffer's send to be done, so a loaned
 * page is never written while the network still reads it (if it were, the write would take a
 * copy-on-write fault and the echo would still be right -- just slower). `zerocopy` copies nothing
 * either way: bytes come in by page transfer (the pages node:net read into become the buffer's pages)
 * and go out by loan; it need not wait, since a transfer replaces the buffer's pages rather than
 * writing them, and pages still on loan stay with the network. (It keeps its ring all the same: with
 * one buffer every page a send holds would be an orphan as soon as the next receive replaced it, and
 * the page map could no longer show the way out as the process's pages on loan -- and one buffer
 * showed no gain that this machine's noise let us measure.)
 *
 * The pipeline is as deep as the ring and the receive area (8 x 64 KiB each by default): a shallow one
 * starves the server -- it waits on the network, not on work. A client that stops reading stops the
 * server from reading its connection: memory per connection is bounded by the ring, the receive area
 * and the send buffer, and connections by maxConnections.
 */
import {
  checkKernel,
  Kernel,
  KernelError,
  option,
  type Proc,
  roundPage,
  VM_MAX_ADDRESS,
  VM_MIN_ADDRESS,
} from '@loanout/core';
import { mbufStats } from '@loanout/mbuf';
import { checkInteger, checkOptions, listenConfig, MAX_LINGER_MS, snapshot } from './sockopt.js';
import type { RecvOptions, SendMode, Socket, SocketOptions } from './uipc_socket.js';

/**
 * how an echo server moves bytes: `copy`, `loan` or `auto` send them back (and copy them in);
 * `zerocopy` copies nothing either way -- in by page transfer, out by page loan
 */
export type EchoMode = SendMode | 'zerocopy';

import { type Listener, listenChecked } from './uipc_syscalls.js';

/** Options of createEchoServer. */
export interface EchoServerOptions extends SocketOptions {
  /** the kernel to run in (default: a new one with 32768 pages = 128 MiB) */
  kernel?: Kernel;
  /** default 127.0.0.1 */
  host?: string;
  /** default 7007; 0 = any free port */
  port?: number;
  /** default 'auto' */
  mode?: EchoMode;
  /** a positive integer, default 128 */
  maxConnections?: number;
  /**
   * size of each buffer in a connection's ring (default 64 KiB; in zerocopy mode rounded up to whole
   * pages, as mmap maps them, so that a receive never stops mid-page for want of room) ...
   */
  bufferBytes?: number;
  /** ... and how many (default 8): the whole ring must fit a process's address space (just under 1 GiB) */
  buffers?: number;
  /**
   * close a connection that has made no progress -- no byte received, no send done -- for this many
   * ms (default 60000; 0 = never; at most 2^31 - 1): idle connections can't keep the slots of
   * maxConnections forever
   */
  idleTimeoutMs?: number;
}

/** What an echo server has done so far, both directions (EchoServer.stats()). */
export interface EchoStats {
  /** bytes received by copy and by page transfer (in), as the kernel counted them */
  recvCopiedBytes: number;
  /** bytes received by page transfer */
  recvTransferredBytes: number;
  /** bytes zeroed after the received ones in partly filled pages that moved in (zerocopy mode) */
  recvZeroFilledBytes: number;
  /** connections accepted */
  connections: number;
  /** connections open now */
  activeConnections: number;
  /** bytes echoed back */
  bytesEchoed: number;
  /** bytes sent back by loan */
  loanedBytes: number;
  /** bytes sent back by copy */
  copiedBytes: number;
  /** mbuf chains sent by loan */
  loanChains: number;
  /** mbuf chains sent by copy */
  copyChains: number;
  /** connections that ended in an error */
  errors: number;
  /** connections reset at accept for want of kernel memory (Listener.dropped) */
  dropped: number;
  /** connections refused politely because maxConnections were open (Listener.refused) */
  refused: number;
  /** connections closed after idleTimeoutMs without progress */
  idleClosed: number;
}

/** EchoServer: a listening echo server of the loanout kernel (createEchoServer). */
export interface EchoServer {
  /** the address it listens on */
  readonly host: string;
  /** the port it listens on */
  readonly port: number;
  /** how it sends back */
  readonly mode: EchoMode;
  /** the kernel its connections run on */
  readonly kernel: Kernel;
  /**
   * stats: what it has done so far (EchoStats)
   * => returns a new object
   */
  stats(): EchoStats;
  /** stop accepting, close every connection, release everything */
  close(): Promise<void>;
}

/* an echo connection's receive chunks and ring buffers: 64 KiB, 8 of each by default */
const ECHO_CHUNK = 64 * 1024;

/* the default kernel: 32768 pages = 128 MiB */
const ECHO_PAGES = 32768;
/* the user part of a process's address space: a connection's ring must fit in it */
const USER_SPACE = VM_MAX_ADDRESS - VM_MIN_ADDRESS;

/* how each connection echoes */
interface Ring {
  mode: EchoMode;
  bufferBytes: number;
  buffers: number;
  idleTimeoutMs: number;
}

interface Counts {
  connections: number;
  active: number;
  bytes: number;
  errors: number;
  idleClosed: number;
}

/**
 * createEchoServer: listen on host:port and echo every byte back.
 * => opts: an object or undefined; listener and socket options as sockListen; bufferBytes and
 *    buffers positive integers whose ring (buffers x bufferBytes, each rounded up to pages) fits a
 *    process's address space (VM_MAX_ADDRESS - VM_MIN_ADDRESS, just under 1 GiB)
 * => throws EINVAL (bad options: checked before a kernel is made or the port bound), EADDRINUSE
 */
export async function createEchoServer(options: EchoServerOptions = {}): Promise<EchoServer> {
  checkOptions('createEchoServer', options);
  const opts = snapshot(options);
  if (opts.kernel !== undefined) checkKernel('createEchoServer', opts.kernel);
  const ring = ringConfig(opts);
  const physPages = opts.kernel?.uvm.pages.length ?? ECHO_PAGES;
  /* a deeper receive area than a plain socket's: as deep as the ring (see the essay) */
  const deep = { recvChunkBytes: ECHO_CHUNK, recvChunks: 8, ...opts };
  const cfg = listenConfig('createEchoServer', deep, physPages, { port: 7007, maxConnections: 128 });
  const kernel = option(opts.kernel, new Kernel({ physPages: ECHO_PAGES, swapPages: 0 }));
  const counts: Counts = { connections: 0, active: 0, bytes: 0, errors: 0, idleClosed: 0 };
  const listener = await listenChecked(kernel, cfg, (so) => serve(kernel, so, ring, counts));
  return {
    host: listener.host,
    port: listener.port,
    mode: ring.mode,
    kernel,
    stats: () => echoStats(kernel, counts, listener),
    close: () => listener.close(),
  };
}

/* ringConfig: the echo options of createEchoServer, checked (EINVAL), defaults filled in */
function ringConfig(opts: EchoServerOptions): Ring {
  const mode = option(opts.mode, 'auto');
  if (mode !== 'copy' && mode !== 'loan' && mode !== 'auto' && mode !== 'zerocopy') {
    throw new KernelError(
      'EINVAL',
      `createEchoServer: mode must be 'copy', 'loan', 'auto' or 'zerocopy', not ${String(mode)}`,
    );
  }
  const ring = {
    mode,
    bufferBytes: option(opts.bufferBytes, ECHO_CHUNK),
    buffers: option(opts.buffers, 8),
    idleTimeoutMs: option(opts.idleTimeoutMs, 60_000),
  };
  checkInteger('createEchoServer', 'bufferBytes', ring.bufferBytes, 1);
  checkInteger('createEchoServer', 'buffers', ring.buffers, 1);
  checkInteger('createEchoServer', 'idleTimeoutMs', ring.idleTimeoutMs, 0, MAX_LINGER_MS);
  if (roundPage(ring.bufferBytes) * ring.buffers > USER_SPACE) {
    throw new KernelError(
      'EINVAL',
      `createEchoServer: a ring of ${ring.buffers} x ${ring.bufferBytes} bytes does not fit a process's ${USER_SPACE}-byte address space`,
    );
  }
  return ring;
}

function echoStats(kernel: Kernel, counts: Counts, listener: Listener): EchoStats {
  const m = mbufStats(kernel);
  return {
    recvCopiedBytes: m.recvCopiedBytes,
    recvTransferredBytes: m.recvTransferredBytes,
    recvZeroFilledBytes: m.recvZeroFilledBytes,
    connections: counts.connections,
    activeConnections: counts.active,
    bytesEchoed: counts.bytes,
    loanedBytes: m.loanedBytes,
    copiedBytes: m.copiedBytes,
    loanChains: m.loanChains,
    copyChains: m.copyChains,
    errors: counts.errors,
    dropped: listener.dropped,
    refused: listener.refused,
    idleClosed: counts.idleClosed,
  };
}

/* an idle timer: fires after idleTimeoutMs without a touch (never if 0) */
interface Idle {
  fired: boolean;
  touch: () => void;
  stop: () => void;
}

/*
 * idleTimer: close the connection (gracefully, a short linger) when it has made no progress for a
 * while. A touch only notes the time -- it is on every receive and every send's completion -- and the
 * timer, when it fires, looks: idle long enough, it closes; else it sleeps again for what is left.
 */
function idleTimer(so: Socket, ms: number, counts: Counts): Idle {
  const idle: Idle = { fired: false, touch: () => {}, stop: () => {} };
  if (ms === 0) return idle;
  let last = performance.now();
  let timer: NodeJS.Timeout;
  const check = () => {
    const left = last + ms - performance.now();
    if (left > 0) {
      timer = setTimeout(check, left).unref();
      return;
    }
    idle.fired = true;
    counts.idleClosed++;
    so.close({ linger: IDLE_LINGER_MS }).catch(() => undefined);
  };
  timer = setTimeout(check, ms).unref();
  idle.touch = () => {
    last = performance.now();
  };
  idle.stop = () => clearTimeout(timer);
  return idle;
}

/* how long an idle connection may take to say goodbye */
const IDLE_LINGER_MS = 1000;

/* serve: one connection, counted; however it fails (its setup too), the socket is destroyed (a reset) */
async function serve(kernel: Kernel, so: Socket, ring: Ring, counts: Counts): Promise<void> {
  counts.connections++;
  counts.active++;
  const idle = idleTimer(so, ring.idleTimeoutMs, counts);
  try {
    await echoConnection(kernel, so, ring, counts, idle.touch);
  } catch {
    so.destroy();
    if (!idle.fired) counts.errors++;
  } finally {
    idle.stop();
    counts.active--;
  }
}

/* echoConnection: one connection's process, which maps its ring and echoes; it exits however that ends */
async function echoConnection(
  kernel: Kernel,
  so: Socket,
  ring: Ring,
  counts: Counts,
  touch: () => void,
): Promise<void> {
  const proc = kernel.createProcess();
  try {
    const bufs = Array.from({ length: ring.buffers }, () => proc.mmap(ring.bufferBytes));
    await echoLoop(so, proc, bufs, ring, counts, touch);
  } finally {
    proc.exit();
  }
}

/*
 * echoLoop: receive into each buffer in turn and send it back from there, counting the bytes; every
 * byte received and every send done is progress. A buffer is reused only once its send is done --
 * except in zerocopy mode: a receive by page transfer replaces the buffer's pages, and those still on
 * loan to a send stay with the network (orphans), so there is nothing to wait for; the send buffer's
 * high-water mark bounds what is in flight
 */
async function echoLoop(
  so: Socket,
  proc: Proc,
  bufs: number[],
  ring: Ring,
  counts: Counts,
  touch: () => void,
): Promise<void> {
  const n = bufs.length;
  const pending: (Promise<void> | null)[] = new Array(n).fill(null);
  const zerocopy = ring.mode === 'zerocopy';
  /* zerocopy: a read's last page moves too, partly filled (zeroed after the bytes): nothing is copied in */
  const recvOpts: RecvOptions = zerocopy ? { mode: 'transfer', tail: 'zero-fill' } : { mode: 'copy' };
  /*
   * zerocopy receives into whole pages (mmap mapped the buffer so): a receive that stopped mid-page for
   * want of room would leave the next bytes mid-page, and every later receive, into a page-aligned
   * buffer, would copy them
   */
  const room = zerocopy ? roundPage(ring.bufferBytes) : ring.bufferBytes;
  const sendOpts = { mode: zerocopy ? 'loan' : (ring.mode as SendMode) };
  try {
    for (let i = 0; ; i = (i + 1) % n) {
      if (pending[i] !== null && !zerocopy) await pending[i];
      const got = await so.recv(proc, bufs[i], room, recvOpts);
      if (got === 0) break;
      touch();
      const done = (await so.send(proc, bufs[i], got, sendOpts)).done;
      done.then(touch, () => undefined);
      pending[i] = done;
      counts.bytes += got;
    }
    await Promise.all(pending);
    await so.close();
  } catch (err) {
    so.destroy();
    await Promise.allSettled(pending);
    throw err;
  }
}
