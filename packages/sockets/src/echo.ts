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
import { Kernel, KernelError } from '@loanout/core';
import { mbufStats } from '@loanout/mbuf';
import type { SendMode, Socket, SocketOptions } from './uipc_socket.js';
import { type Listener, sockListen } from './uipc_syscalls.js';

export interface EchoServerOptions extends SocketOptions {
  /* the kernel to run in (default: a new one with 32768 pages = 128 MiB) */
  kernel?: Kernel;
  /* default 127.0.0.1 */
  host?: string;
  /* default 7007; 0 = any free port */
  port?: number;
  /* default 'auto' */
  mode?: SendMode;
  /* default 128 */
  maxConnections?: number;
  /* size of each buffer in a connection's ring (default 64 KiB) */
  bufferBytes?: number;
  /* buffers in a connection's ring (default 4) */
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

/*
 * createEchoServer: listen on host:port and echo every byte back.
 * => throws EINVAL (bad options), EADDRINUSE
 */
export async function createEchoServer(opts: EchoServerOptions = {}): Promise<EchoServer> {
  const mode = opts.mode ?? 'auto';
  if (mode !== 'copy' && mode !== 'loan' && mode !== 'auto') {
    throw new KernelError('EINVAL', `echo: mode must be 'copy', 'loan' or 'auto', not ${String(mode)}`);
  }
  const bufferBytes = opts.bufferBytes ?? 64 * 1024;
  const buffers = opts.buffers ?? 4;
  if (!Number.isSafeInteger(bufferBytes) || bufferBytes < 1)
    throw new KernelError('EINVAL', 'echo: bad bufferBytes');
  if (!Number.isSafeInteger(buffers) || buffers < 1) throw new KernelError('EINVAL', 'echo: bad buffers');
  const kernel = opts.kernel ?? new Kernel({ physPages: 32768, swapPages: 0 });
  const counts = { connections: 0, active: 0, bytes: 0, errors: 0 };
  const serve = async (so: Socket) => {
    counts.connections++;
    counts.active++;
    try {
      await echoConnection(kernel, so, mode, bufferBytes, buffers, counts);
    } catch {
      counts.errors++;
    } finally {
      counts.active--;
    }
  };
  const listener: Listener = await sockListen(
    kernel,
    {
      ...opts,
      host: opts.host ?? '127.0.0.1',
      port: opts.port ?? 7007,
      maxConnections: opts.maxConnections ?? 128,
    },
    serve,
  );
  return {
    host: listener.host,
    port: listener.port,
    mode,
    kernel,
    stats: () => {
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
      };
    },
    close: () => listener.close(),
  };
}

/* echoConnection: one connection's process; counts the bytes it echoes as it goes */
async function echoConnection(
  kernel: Kernel,
  so: Socket,
  mode: SendMode,
  size: number,
  n: number,
  counts: { bytes: number },
): Promise<void> {
  const proc = kernel.createProcess();
  const ring = Array.from({ length: n }, () => proc.mmap(size));
  const pending: (Promise<void> | null)[] = new Array(n).fill(null);
  try {
    for (let i = 0; ; i = (i + 1) % n) {
      if (pending[i] !== null) await pending[i];
      const got = await so.recv(proc, ring[i], size);
      if (got === 0) break;
      pending[i] = (await so.send(proc, ring[i], got, { mode })).done;
      counts.bytes += got;
    }
    await Promise.all(pending);
    await so.close();
  } catch (err) {
    so.destroy();
    await Promise.allSettled(pending);
    throw err;
  } finally {
    proc.exit();
  }
}
