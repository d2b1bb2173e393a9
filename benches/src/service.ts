/*
 * service.ts: what the sink (sink.ts) offers on each of its data ports -- a server with counters.
 *
 * Every service counts since the sink started and never resets: a bench takes `stats` before and
 * after a suite and uses the difference, so nothing the sink holds depends on who asked before.
 */
import type net from 'node:net';

export interface Service {
  /** the port it listens on */
  readonly port: number;
  /** connections open now */
  open(): number;
  /** its counters since the sink started (bytes and the like) */
  stats(): Record<string, number>;
  /** stop listening and close every connection */
  close(): Promise<void>;
}

/**
 * listen: start a server on host:port.
 * => port 0: any free port
 * => resolves with the port bound; rejects with listen's error (EADDRINUSE, EACCES, EADDRNOTAVAIL)
 */
export function listen(server: net.Server, host: string, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host, port }, () => {
      server.off('error', reject);
      resolve((server.address() as net.AddressInfo).port);
    });
  });
}
