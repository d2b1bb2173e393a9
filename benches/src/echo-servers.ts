/*
 * echo-servers.ts: the sink's echo services -- what the echo and latency suites talk to.
 *
 * `echo-copy`, `echo-loan` and `echo-zerocopy` are the sockets package's createEchoServer in that
 * mode, each in its own 64 MiB loanout kernel (so each server's counters are its own), with its default
 * pipeline: a receive area and a ring of 8 x 64 KiB each per connection. `echo-raw` is the ceiling:
 * node:net alone, no kernel, echoing zero-copy from a ring of 16 x 64 KiB. It is the no-allocation
 * equivalent of socket.pipe(socket): pipe() allocates a fresh buffer for every read (and was measured
 * here at half the speed), while the kernel servers read with `onread` into preallocated memory -- so a
 * pipe() "ceiling" would sit below the servers it is meant to bound.
 *
 * Every server holds at most 1 MiB per connection -- read and not yet written back and taken by the
 * host: raw its ring; copy and loan their receive area and ring (a ring buffer is reused only once its
 * send is done); zerocopy its receive area and a 512 KiB send buffer (a receive by transfer replaces a
 * buffer's pages, so it does not wait for the send; the send buffer bounds what is in flight). A fair
 * comparison gives every server the same bytes in flight: a shallow pipeline starves a server, and the
 * difference would be depth, not work. Only one server is busy at a time (the bench runs one case at a
 * time), so they don't compete for the process.
 */
import net from 'node:net';
import { Kernel } from '@loanout/core';
import { createEchoServer } from '@loanout/sockets';
import { adoptAccepted } from './net-onread.js';
import { listen, type Service } from './service.js';

const RING = 16;
const CHUNK = 64 * 1024;
/* zerocopy's send buffer: with its 8 x 64 KiB receive area, 1 MiB per connection like the others */
const ZEROCOPY_HIWAT = 512 * 1024;

/*
 * ringEcho: echo one connection with no copy and no allocation: Node reads into a free chunk of a
 * ring (onread), the bytes are written back from that chunk, and the chunk is free again when the
 * write callback fires. Reading pauses while fewer than two chunks are free (Node asks for the next
 * chunk right after every read, even one after which it pauses) and resumes when one frees up.
 */
function ringEcho(raw: net.Socket, count: (n: number) => void): net.Socket {
  const free: Buffer[] = Array.from({ length: RING }, () => Buffer.allocUnsafe(CHUNK));
  let armed: Buffer | null = null;
  let paused = false;
  const sock = adoptAccepted(raw, {
    buffer: () => {
      armed = free.pop()!;
      return armed;
    },
    callback: (n, buf) => {
      const chunk = armed!;
      armed = null;
      count(n);
      sock.write(buf.subarray(0, n), () => {
        free.push(chunk);
        if (paused && free.length >= 1 && !sock.destroyed) {
          paused = false;
          sock.resume();
        }
      });
      paused = free.length < 2;
      return !paused;
    },
  });
  return sock;
}

/**
 * startRawEcho: the ceiling -- node:net alone, echoing every connection zero-copy (ringEcho).
 * => stats: { bytesEchoed }; throws listen's errors
 */
export async function startRawEcho(host: string, port: number): Promise<Service> {
  let echoed = 0;
  let open = 0;
  const server = net.createServer({ pauseOnConnect: true }, (raw) => {
    open++;
    ringEcho(raw, (n) => {
      echoed += n;
    }).once('close', () => open--);
  });
  return {
    port: await listen(server, host, port),
    open: () => open,
    stats: () => ({ bytesEchoed: echoed }),
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/**
 * startKernelEcho: createEchoServer in `mode`, in a kernel of its own (64 MiB, no swap).
 * => stats: { bytesEchoed, loanedBytes, copiedBytes }; throws createEchoServer's errors
 */
export async function startKernelEcho(
  mode: 'copy' | 'loan' | 'zerocopy',
  host: string,
  port: number,
): Promise<Service> {
  const kernel = new Kernel({ physPages: 16384, swapPages: 0 });
  const sendHighWater = mode === 'zerocopy' ? ZEROCOPY_HIWAT : undefined;
  const server = await createEchoServer({ kernel, mode, host, port, sendHighWater });
  return {
    port: server.port,
    open: () => server.stats().activeConnections,
    stats: () => {
      const s = server.stats();
      return {
        bytesEchoed: s.bytesEchoed,
        loanedBytes: s.loanedBytes,
        copiedBytes: s.copiedBytes,
        recvCopiedBytes: s.recvCopiedBytes,
        recvTransferredBytes: s.recvTransferredBytes,
      };
    },
    close: () => server.close(),
  };
}
