/*
 * tcp-receiver.ts: the receiving end of the tcp suite, in its own OS process (a child of the bench).
 *
 * It must never be the bottleneck, or every mode would measure the receiver: so it is plain node:net,
 * no kernel, reading with `onread` into one reusable 1 MiB buffer (no allocation per read, large reads)
 * and discarding the bytes, only counting them (net-onread.ts re-wraps each accepted connection so
 * that it reads through `onread`).
 *
 * Requests: `stats` -> bytes received, open connections, and the CPU time used so far (to show the
 * receiver had time to spare); `final` -> the same, once every connection has ended (or after 5 s).
 */
import net from 'node:net';
import { serveChild } from './children.js';
import { adoptAccepted } from './net-onread.js';

const buf = Buffer.allocUnsafe(1 << 20);
let bytes = 0;
let open = 0;

/* adopt: read an accepted connection through onread into the shared buffer, counting */
function adopt(raw: net.Socket): void {
  const sock = adoptAccepted(raw, {
    buffer: buf,
    callback: (n) => {
      bytes += n;
      return true;
    },
  });
  open++;
  sock.once('close', () => open--);
}

async function waitClosed(ms: number): Promise<void> {
  const until = Date.now() + ms;
  while (open > 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
}

await serveChild(async () => {
  const server = net.createServer({ pauseOnConnect: true }, adopt);
  await new Promise<void>((resolve) => server.listen({ host: '127.0.0.1', port: 0 }, resolve));
  const t0 = performance.now();
  const stats = () => {
    const cpu = process.cpuUsage();
    return { bytes, open, cpuMs: (cpu.user + cpu.system) / 1000, wallMs: performance.now() - t0 };
  };
  return {
    ready: { port: (server.address() as net.AddressInfo).port },
    stats: async (type) => {
      if (type === 'final') await waitClosed(5_000);
      return stats();
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
});
