/*
 * echo.ts: an echo server on the toy kernel -- the smallest real program that both receives and
 * sends, and so the natural place to watch copy versus loan.
 *
 * Each connection is served by its own process (as a forking server would): it maps a ring of
 * buffers, receives into one, sends it back from the same memory (copy, loan or auto), and moves to
 * the next buffer; before reusing a buffer it waits for that buffer's send to be done, so a loaned
 * page is never written while the network still reads it (if it were, the write would take a
 * copy-on-write fault and the echo would still be right -- just slower). A client that stops reading
 * therefore stops the server from reading its connection: memory per connection is bounded by the
 * ring, the receive area and the send buffer, and connections by maxConnections.
 */
import {
  checkKernel,
  Kernel,
  KernelError,
  PAGE_SIZE,
  type Proc,
  VM_MAX_ADDRESS,
  VM_MIN_ADDRESS,
} from '@loanout/core';
import { mbufStats } from '@loanout/mbuf';
import { checkInteger, checkOptions, listenConfig } from './sockopt.js';
import type { SendMode, Socket, SocketOptions } from './uipc_socket.js';
import { listenChecked } from './uipc_syscalls.js';

export interface EchoServerOptions extends SocketOptions {
  /* the kernel to run in (default: a new one with 32768 pages = 128 MiB) */
  kernel?: Kernel;
  /* default 127.0.0.1 */
  host?: string;
  /* default 7007; 0 = any free port */
  port?: number;
  /* default 'auto' */
  mode?: SendMode;
  /* a positive integer, default 128 */
  maxConnections?: number;
  /* size of each buffer in a connection's ring (default 64 KiB) ... */
  bufferBytes?: number;
  /* ... and how many (default 4): the whole ring must fit a process's address space (just under 1 GiB) */
  buffers?: number;
}

export interface EchoStats {
  connections: number;
  activeConnections: number;
  bytesEchoed: number;
  loanedBytes: number;
  copiedBytes: number;
  loanChains: number;
  copyChains: number;
  errors: number;
  /* connections reset at accept for want of kernel memory (Listener.dropped) */
  dropped: number;
}

export interface EchoServer {
  readonly host: string;
  readonly port: number;
  readonly mode: SendMode;
  readonly kernel: Kernel;
  stats(): EchoStats;
  /* stop accepting, close every connection, release everything */
  close(): Promise<void>;
}

/* the default kernel: 32768 pages = 128 MiB */
const ECHO_PAGES = 32768;
/* the user part of a process's address space: a connection's ring must fit in it */
const USER_SPACE = VM_MAX_ADDRESS - VM_MIN_ADDRESS;

/* how each connection echoes */
interface Ring {
  mode: SendMode;
  bufferBytes: number;
  buffers: number;
}

interface Counts {
  connections: number;
  active: number;
  bytes: number;
  errors: number;
}

/*
 * createEchoServer: listen on host:port and echo every byte back.
 * => opts: an object or undefined; listener and socket options as sockListen; bufferBytes and
 *    buffers positive integers whose ring (buffers x bufferBytes, each rounded up to pages) fits a
 *    process's address space (VM_MAX_ADDRESS - VM_MIN_ADDRESS, just under 1 GiB)
 * => throws EINVAL (bad options: checked before a kernel is made or the port bound), EADDRINUSE
 */
export async function createEchoServer(opts: EchoServerOptions = {}): Promise<EchoServer> {
  checkOptions('createEchoServer', opts);
  if (opts.kernel !== undefined) checkKernel('createEchoServer', opts.kernel);
  const ring = ringConfig(opts);
  const physPages = opts.kernel?.uvm.pages.length ?? ECHO_PAGES;
  const cfg = listenConfig('createEchoServer', opts, physPages, { port: 7007, maxConnections: 128 });
  const kernel = opts.kernel ?? new Kernel({ physPages: ECHO_PAGES, swapPages: 0 });
  const counts: Counts = { connections: 0, active: 0, bytes: 0, errors: 0 };
  const listener = await listenChecked(kernel, cfg, (so) => serve(kernel, so, ring, counts));
  return {
    host: listener.host,
    port: listener.port,
    mode: ring.mode,
    kernel,
    stats: () => echoStats(kernel, counts, listener.dropped),
    close: () => listener.close(),
  };
}

/* ringConfig: the echo options of createEchoServer, checked (EINVAL), defaults filled in */
function ringConfig(opts: EchoServerOptions): Ring {
  const mode = opts.mode ?? 'auto';
  if (mode !== 'copy' && mode !== 'loan' && mode !== 'auto') {
    throw new KernelError(
      'EINVAL',
      `createEchoServer: mode must be 'copy', 'loan' or 'auto', not ${String(mode)}`,
    );
  }
  const ring = { mode, bufferBytes: opts.bufferBytes ?? 64 * 1024, buffers: opts.buffers ?? 4 };
  checkInteger('createEchoServer', 'bufferBytes', ring.bufferBytes, 1);
  checkInteger('createEchoServer', 'buffers', ring.buffers, 1);
  if (Math.ceil(ring.bufferBytes / PAGE_SIZE) * PAGE_SIZE * ring.buffers > USER_SPACE) {
    throw new KernelError(
      'EINVAL',
      `createEchoServer: a ring of ${ring.buffers} x ${ring.bufferBytes} bytes does not fit a process's ${USER_SPACE}-byte address space`,
    );
  }
  return ring;
}

function echoStats(kernel: Kernel, counts: Counts, dropped: number): EchoStats {
  const m = mbufStats(kernel);
  return {
    connections: counts.connections,
    activeConnections: counts.active,
    bytesEchoed: counts.bytes,
    loanedBytes: m.loanedBytes,
    copiedBytes: m.copiedBytes,
    loanChains: m.loanChains,
    copyChains: m.copyChains,
    errors: counts.errors,
    dropped,
  };
}

/* serve: one connection, counted; however it fails (its setup too), the socket is closed */
async function serve(kernel: Kernel, so: Socket, ring: Ring, counts: Counts): Promise<void> {
  counts.connections++;
  counts.active++;
  try {
    await echoConnection(kernel, so, ring, counts);
  } catch {
    so.destroy();
    counts.errors++;
  } finally {
    counts.active--;
  }
}

/* echoConnection: one connection's process, which maps its ring and echoes; it exits however that ends */
async function echoConnection(kernel: Kernel, so: Socket, ring: Ring, counts: Counts): Promise<void> {
  const proc = kernel.createProcess();
  try {
    const bufs = Array.from({ length: ring.buffers }, () => proc.mmap(ring.bufferBytes));
    await echoLoop(so, proc, bufs, ring, counts);
  } finally {
    proc.exit();
  }
}

/*
 * echoLoop: receive into each buffer in turn and send it back from there, counting the bytes; a
 * buffer is reused only once its send is done
 */
async function echoLoop(so: Socket, proc: Proc, bufs: number[], ring: Ring, counts: Counts): Promise<void> {
  const n = bufs.length;
  const pending: (Promise<void> | null)[] = new Array(n).fill(null);
  try {
    for (let i = 0; ; i = (i + 1) % n) {
      if (pending[i] !== null) await pending[i];
      const got = await so.recv(proc, bufs[i], ring.bufferBytes);
      if (got === 0) break;
      pending[i] = (await so.send(proc, bufs[i], got, { mode: ring.mode })).done;
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
