/*
 * source.ts: the sink's source service -- the sending end of the recv suite.
 *
 * A receiver asks for bytes and the source streams them: plain node:net, no kernel, writing views of
 * one preallocated 1 MiB buffer (no allocation, no copy in userland), as fast as the connection takes
 * them (it waits for 'drain' when Node's buffer is full). It must never be the bottleneck, so that
 * the receivers -- copy, page transfer, raw -- are what differs.
 *
 * The request: 8 bytes, a little-endian float64 count of bytes to send; any number of requests on a
 * connection, served in order. Counters are cumulative since the sink started (service.ts).
 */
import net from 'node:net';
import { listen, type Service } from './service.js';

const CHUNK = 1 << 20;

/**
 * startSource: listen on host:port; on every connection, send as many bytes as each request asks for.
 * => stats: { bytes } sent in all; throws listen's errors
 */
export async function startSource(host: string, port: number): Promise<Service> {
  const data = Buffer.alloc(CHUNK);
  for (let i = 0; i < CHUNK; i++) data[i] = (i * 131 + 7) & 0xff;
  const counts = { bytes: 0 };
  let open = 0;
  const server = net.createServer((sock) => {
    open++;
    sock.setNoDelay(true);
    sock.on('error', () => sock.destroy());
    sock.once('close', () => open--);
    serve(sock, data, counts);
  });
  return {
    port: await listen(server, host, port),
    open: () => open,
    stats: () => ({ bytes: counts.bytes }),
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/* serve: read requests, 8 bytes each, and stream what each asks for, one after the other */
function serve(sock: net.Socket, data: Buffer, counts: { bytes: number }): void {
  let pending = Buffer.alloc(0);
  const queue: number[] = [];
  let sending = false;
  const pump = () => {
    sending = true;
    while (queue.length > 0) {
      const n = Math.min(queue[0], CHUNK);
      queue[0] -= n;
      if (queue[0] === 0) queue.shift();
      counts.bytes += n;
      if (!sock.write(data.subarray(0, n))) {
        sock.once('drain', pump);
        return;
      }
    }
    sending = false;
  };
  sock.on('data', (d: Buffer) => {
    pending = Buffer.concat([pending, d]);
    while (pending.length >= 8) {
      const n = pending.readDoubleLE(0);
      pending = pending.subarray(8);
      if (Number.isSafeInteger(n) && n > 0) queue.push(n);
    }
    if (!sending && queue.length > 0) pump();
  });
}
