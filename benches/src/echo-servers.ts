/*
 * echo-servers.ts: the servers of the echo suite, in their own OS process (a child of the bench).
 *
 * Three servers listen on 127.0.0.1, each on a free port: the sockets package's createEchoServer in
 * `copy` mode and in `loan` mode (each in its own 64 MiB loanout kernel, default ring of 4 x 64 KiB
 * buffers per connection), and a raw node:net echo server, no kernel, as the ceiling. The raw server
 * is the zero-copy equivalent of socket.pipe(socket): pipe() allocates a fresh buffer for every read
 * (and was measured here at half the speed), while the kernel servers read with `onread` into
 * preallocated memory -- so a pipe() "ceiling" would sit below the servers it is meant to bound. Only one of them is busy at a time (the bench runs one case at a time), so they don't
 * compete for the process.
 *
 * Requests: `stats` -> what each server echoed, and for the kernel servers how many bytes were
 * loaned versus copied (the loan server must have loaned, the copy server copied).
 */
import net from 'node:net';
import { Kernel } from '@loanout/core';
import { createEchoServer } from '@loanout/sockets';
import { serveChild } from './children.js';
import { adoptAccepted } from './net-onread.js';

const RING = 8;
const CHUNK = 64 * 1024;

/*
 * ringEcho: echo one connection with no copy and no allocation: Node reads into a free chunk of a
 * ring (onread), the bytes are written back from that chunk, and the chunk is free again when the
 * write callback fires. Reading pauses while fewer than two chunks are free (Node asks for the next
 * chunk right after every read, even one after which it pauses) and resumes when one frees up.
 */
function ringEcho(raw: net.Socket, count: (n: number) => void): void {
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
}

/* rawEcho: the ceiling -- node:net alone, echoing every connection zero-copy (ringEcho) */
function rawEcho(): Promise<{ server: net.Server; echoed: () => number }> {
  let echoed = 0;
  const server = net.createServer({ pauseOnConnect: true }, (raw) =>
    ringEcho(raw, (n) => {
      echoed += n;
    }),
  );
  return new Promise((resolve) =>
    server.listen({ host: '127.0.0.1', port: 0 }, () => resolve({ server, echoed: () => echoed })),
  );
}

await serveChild(async () => {
  /* a kernel each, so that each server's loaned/copied counters are its own */
  const copy = await createEchoServer({
    kernel: new Kernel({ physPages: 16384, swapPages: 0 }),
    mode: 'copy',
    port: 0,
  });
  const loan = await createEchoServer({
    kernel: new Kernel({ physPages: 16384, swapPages: 0 }),
    mode: 'loan',
    port: 0,
  });
  const raw = await rawEcho();
  return {
    ready: { copy: copy.port, loan: loan.port, raw: (raw.server.address() as net.AddressInfo).port },
    stats: () => ({ copy: copy.stats(), loan: loan.stats(), raw: { bytesEchoed: raw.echoed() } }),
    close: async () => {
      await Promise.all([copy.close(), loan.close()]);
      raw.server.close();
    },
  };
});
