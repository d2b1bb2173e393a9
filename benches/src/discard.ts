/*
 * discard.ts: the sink's discard service -- the receiving end of the tcp suite.
 *
 * It must never be the bottleneck, or every mode would measure the receiver: so it is plain node:net,
 * no kernel, reading with `onread` into one reusable 1 MiB buffer (no allocation per read, large reads)
 * and dropping the bytes, only counting them (net-onread.ts re-wraps each accepted connection so that
 * it reads through `onread`). Its counters are cumulative since the sink started: the bench takes the
 * difference between two `stats` of the control port (sink.ts).
 */
import net from 'node:net';
import { adoptAccepted } from './net-onread.js';
import { listen, type Service } from './service.js';

/**
 * startDiscard: listen on host:port, read every connection and drop what arrives.
 * => port 0: any free port
 * => stats: { bytes } received in all; throws EADDRINUSE and the like from listen
 */
export async function startDiscard(host: string, port: number): Promise<Service> {
  const buf = Buffer.allocUnsafe(1 << 20);
  let bytes = 0;
  let open = 0;
  const server = net.createServer({ pauseOnConnect: true }, (raw) => {
    const sock = adoptAccepted(raw, {
      buffer: buf,
      callback: (n) => {
        bytes += n;
        return true;
      },
    });
    open++;
    sock.once('close', () => open--);
  });
  return {
    port: await listen(server, host, port),
    open: () => open,
    stats: () => ({ bytes }),
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
