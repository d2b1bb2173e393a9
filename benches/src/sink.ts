/*
 * sink.ts: the far side of the network suites, in a process of its own -- on this machine (the bench
 * forks it, on 127.0.0.1 and free ports) or on another one (`pnpm sink`, and `pnpm bench --peer`).
 *
 * The same sink serves every mode, so copy, loan and raw meet the same far side and only the
 * sender's work differs. It offers a *control port* and one *data port per service* (SERVICES, below):
 *
 *   port N      control: one JSON request per line, one JSON reply per line (below)
 *   port N+1    discard    reads and drops (tcp suite)
 *   port N+2    echo-copy  the kernel echo server, sending back by copy   (echo, latency)
 *   port N+3    echo-loan  the kernel echo server, sending back by loan   (echo, latency)
 *   port N+4    echo-raw   node:net echo, zero-copy, the ceiling         (echo, latency)
 *   port N+5    source     streams the bytes each request asks for       (recv)
 *   port N+6    echo-zerocopy  the kernel echo server, in by page transfer, out by loan (echo, latency)
 *
 * With port 0 every port is a free one instead; `hello` tells which. The control protocol:
 *
 *   {"op":"hello"}   -> {"ok":true,"protocol":1,"ports":{"discard":N+1,...},"node":..,"cpu":..,"cores":..,"os":..}
 *   {"op":"stats"}   -> {"ok":true,"cpuMs":..,"wallMs":..,"services":{"discard":{"bytes":..},...}}
 *   {"op":"settle"}  -> the same as stats, once no data connection is open (or after 5 s)
 *   anything else    -> {"ok":false,"error":"..."}
 *
 * Counters only grow (service.ts): a bench takes stats before and after a suite. One bench at a time:
 * while a control connection is open, another one is told `busy` and closed, so two benches can't
 * silently share a sink and each measure half of it.
 */
import net from 'node:net';
import { startDiscard } from './discard.js';
import { startKernelEcho, startRawEcho } from './echo-servers.js';
import { machine } from './record.js';
import type { Service } from './service.js';
import { startSource } from './source.js';

/** the control protocol's version: a bench refuses a sink that speaks another */
export const PROTOCOL = 1;

/** a service of the sink, on port N+1+i (its index i here): add one to offer something new */
export const SERVICES: readonly { name: string; what: string; start: typeof startDiscard }[] = [
  { name: 'discard', what: 'reads and drops (tcp suite)', start: startDiscard },
  {
    name: 'echo-copy',
    what: 'kernel echo server, sends back by copy (echo, latency)',
    start: (h, p) => startKernelEcho('copy', h, p),
  },
  {
    name: 'echo-loan',
    what: 'kernel echo server, sends back by loan (echo, latency)',
    start: (h, p) => startKernelEcho('loan', h, p),
  },
  { name: 'echo-raw', what: 'node:net zero-copy echo, the ceiling (echo, latency)', start: startRawEcho },
  { name: 'source', what: 'streams the bytes each request asks for (recv suite)', start: startSource },
  {
    name: 'echo-zerocopy',
    what: 'kernel echo server, in by page transfer and out by loan (echo, latency)',
    start: (h, p) => startKernelEcho('zerocopy', h, p),
  },
];

/** the highest control port: N+1 .. N+SERVICES.length must be ports too */
export const MAX_CONTROL_PORT = 65535 - SERVICES.length;

export interface Sink {
  readonly host: string;
  /** the control port */
  readonly port: number;
  /** the data ports, by service name */
  readonly ports: Record<string, number>;
  close(): Promise<void>;
}

/**
 * startSink: start every service and the control port.
 * => port: the control port, 0..MAX_CONTROL_PORT; 0 puts every port on a free one, N puts the
 *    services on N+1, N+2, ...
 * => throws, naming the service and port, if one can't listen (everything started is closed)
 */
export async function startSink(host: string, port: number): Promise<Sink> {
  const services = new Map<string, Service>();
  const closeAll = () => Promise.all([...services.values()].map((s) => s.close()));
  try {
    for (const [i, def] of SERVICES.entries()) {
      const want = port === 0 ? 0 : port + 1 + i;
      try {
        services.set(def.name, await def.start(host, want));
      } catch (err) {
        throw new Error(`sink: ${def.name} cannot listen on ${host}:${want}: ${(err as Error).message}`);
      }
    }
    const control = await startControl(host, port, services);
    return {
      host,
      port: control.port,
      ports: Object.fromEntries([...services].map(([name, s]) => [name, s.port])),
      close: async () => {
        await control.close();
        await closeAll();
      },
    };
  } catch (err) {
    await closeAll();
    throw err;
  }
}

/* startControl: the control port: at most one session, one JSON request per line */
async function startControl(host: string, port: number, services: Map<string, Service>) {
  let session: net.Socket | null = null;
  const all = new Set<net.Socket>();
  const server = net.createServer((sock) => {
    all.add(sock);
    sock.once('close', () => all.delete(sock));
    sock.on('error', () => sock.destroy());
    if (session !== null) {
      sock.end(`${JSON.stringify({ ok: false, error: 'busy: another bench is using this sink' })}\n`);
      return;
    }
    session = sock;
    sock.once('close', () => {
      session = null;
    });
    serveLines(sock, (req) => answer(req, services));
  });
  const bound = await new Promise<number>((resolve, reject) => {
    server.once('error', (err) =>
      reject(new Error(`sink: control cannot listen on ${host}:${port}: ${err.message}`)),
    );
    server.listen({ host, port }, () => resolve((server.address() as net.AddressInfo).port));
  });
  return {
    port: bound,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of all) s.destroy();
        server.close(() => resolve());
      }),
  };
}

/* serveLines: read JSON lines from sock, answer each in order (a line over 64 KiB ends the session) */
function serveLines(sock: net.Socket, handle: (req: unknown) => Promise<object>): void {
  let buf = '';
  let queue: Promise<void> = Promise.resolve();
  sock.setEncoding('utf8');
  sock.on('data', (chunk: string) => {
    if (sock.writableEnded) return;
    buf += chunk;
    if (buf.length > 65536) {
      sock.end(`${JSON.stringify({ ok: false, error: 'request too long' })}\n`);
      return;
    }
    for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      queue = queue.then(async () => {
        const reply = await handle(parse(line));
        if (!sock.writableEnded) sock.write(`${JSON.stringify(reply)}\n`);
      });
    }
  });
}

function parse(line: string): unknown {
  try {
    return JSON.parse(line);
  } catch {
    return null;
  }
}

const t0 = performance.now();

/* answer: one control request */
async function answer(req: unknown, services: Map<string, Service>): Promise<object> {
  const op = (req as { op?: unknown } | null)?.op;
  if (op === 'hello') {
    const ports = Object.fromEntries([...services].map(([name, s]) => [name, s.port]));
    return { ok: true, protocol: PROTOCOL, ports, ...machine() };
  }
  if (op === 'stats') return stats(services);
  if (op === 'settle') {
    const until = Date.now() + 5_000;
    const busy = () => [...services.values()].some((s) => s.open() > 0);
    while (busy() && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
    return stats(services);
  }
  return { ok: false, error: req === null ? 'bad request: not JSON' : `unknown op ${String(op)}` };
}

function stats(services: Map<string, Service>): object {
  const cpu = process.cpuUsage();
  return {
    ok: true,
    cpuMs: (cpu.user + cpu.system) / 1000,
    wallMs: performance.now() - t0,
    services: Object.fromEntries([...services].map(([name, s]) => [name, s.stats()])),
  };
}
