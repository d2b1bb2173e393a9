/*
 * page-map-server.ts: a live page map of a running loanout kernel, served on loopback.
 *
 * A small node:http server hands out two static files (the page and its script, no CDN) and a
 * Server-Sent Events stream: a few times a second, one byte per physical frame (its state, from
 * kernel.frameStates()), the kernel's counters, the mbuf counters (bytes loaned and copied to the
 * network), and the trace events (loan, unloan, loanbreak, orphan, adopt, pageout, pagein) since the
 * last message. /frame/N describes one frame in full. It listens on 127.0.0.1 only, and subscribes to
 * the trace only while it runs.
 */
import { readFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { checkKernel, FRAME_STATE_NAMES, type Kernel, KernelError, type TraceEvent } from '@loanout/core';
import { mbufStats } from '@loanout/mbuf';

/** What {@link startPageMap} accepts; every field is optional. */
export interface PageMapOptions {
  /** the port to listen on, an integer 0..65535; default 0: any free port (the host is always 127.0.0.1) */
  port?: number;
  /** milliseconds between two updates, at least 20; default 250 */
  intervalMs?: number;
  /** what is running, shown as the page's heading and title; default "loanout" */
  title?: string;
}

/** A running page map, as {@link startPageMap} returns it. */
export interface PageMap {
  /** where to open it, `http://127.0.0.1:<port>/` */
  readonly url: string;
  /** browsers (event streams) open now */
  viewers(): number;
  /** stop serving, end every stream, unsubscribe from the trace; resolves once the server is closed */
  close(): Promise<void>;
}

/* the trace events kept between two updates (the oldest are dropped beyond this, and counted) */
const TRACE_MAX = 512;

/* a stream that has this much unsent is skipped until its browser catches up */
const STREAM_BACKLOG_MAX = 1 << 20;

/*
 * The page and its script live in the package's static/ directory, beside src/ and dist/: the same
 * relative URL finds them from the source (tests, examples) and from the built, installed package.
 */
const STATIC_DIR = new URL('../static/', import.meta.url);
const STATIC: Record<string, { file: string; type: string }> = {
  '/': { file: 'index.html', type: 'text/html; charset=utf-8' },
  '/app.js': { file: 'app.js', type: 'text/javascript; charset=utf-8' },
};

/* the trace between two updates: the latest TRACE_MAX events, and how many older ones were dropped */
class TraceWindow {
  events: TraceEvent[] = [];
  dropped = 0;

  push(ev: TraceEvent): void {
    if (this.events.length >= TRACE_MAX) {
      this.events.shift();
      this.dropped++;
    }
    this.events.push(ev);
  }

  take(): { trace: TraceEvent[]; dropped: number } {
    const out = { trace: this.events, dropped: this.dropped };
    this.events = [];
    this.dropped = 0;
    return out;
  }
}

/**
 * startPageMap: serve the live page map of `kernel` on 127.0.0.1.
 * => kernel: a Kernel of @loanout/core; opts: as {@link PageMapOptions}, checked before anything starts
 * => resolves to the running map, subscribed to the kernel's trace until its close()
 * => throws KernelError EINVAL (not a kernel, bad options), EADDRINUSE (the port is taken), EIO
 */
export async function startPageMap(kernel: Kernel, opts: PageMapOptions = {}): Promise<PageMap> {
  const { intervalMs, port, title } = checkOptions(kernel, opts);
  const trace = new TraceWindow();
  const unsubscribe = kernel.onTrace((ev) => trace.push(ev));
  /* open event streams, each with the trace events it missed while it lagged */
  const streams = new Map<http.ServerResponse, number>();
  const states = new Uint8Array(kernel.uvm.pages.length);
  const server = http.createServer((req, res) => void route(kernel, title, req, res, streams));
  const timer = setInterval(() => broadcast(kernel, streams, states, trace.take()), intervalMs);
  try {
    await listen(server, port);
  } catch (err) {
    clearInterval(timer);
    unsubscribe();
    throw err;
  }
  const bound = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${bound}/`,
    viewers: () => streams.size,
    close: async () => {
      clearInterval(timer);
      unsubscribe();
      for (const res of streams.keys()) res.end();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

function checkOptions(kernel: Kernel, opts: PageMapOptions): Required<PageMapOptions> {
  checkKernel('page map', kernel);
  if (opts === null || typeof opts !== 'object') throw new KernelError('EINVAL', 'page map: bad options');
  const { intervalMs = 250, port = 0, title = 'loanout' } = opts;
  if (!Number.isFinite(intervalMs) || intervalMs < 20)
    throw new KernelError('EINVAL', `page map: intervalMs must be a number >= 20, not ${String(intervalMs)}`);
  if (!Number.isInteger(port) || port < 0 || port > 65535)
    throw new KernelError('EINVAL', `page map: port must be an integer 0..65535, not ${String(port)}`);
  if (typeof title !== 'string') throw new KernelError('EINVAL', 'page map: title must be a string');
  return { intervalMs, port, title };
}

function listen(server: http.Server, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) =>
      reject(new KernelError(err.code === 'EADDRINUSE' ? 'EADDRINUSE' : 'EIO', `page map: ${err.message}`)),
    );
    server.listen({ host: '127.0.0.1', port }, () => resolve());
  });
}

async function route(
  kernel: Kernel,
  title: string,
  req: http.IncomingMessage,
  res: http.ServerResponse,
  streams: Map<http.ServerResponse, number>,
) {
  const url = new URL(req.url ?? '/', 'http://127.0.0.1');
  const file = STATIC[url.pathname];
  if (req.method !== 'GET') return reply(res, 405, 'text/plain', 'GET only\n');
  if (file !== undefined) {
    const body = await readFile(new URL(file.file, STATIC_DIR));
    return reply(res, 200, file.type, body);
  }
  if (url.pathname === '/events') return openStream(kernel, title, res, streams);
  const m = /^\/frame\/(\d+)$/.exec(url.pathname);
  if (m !== null) {
    const frame = Number(m[1]);
    if (frame >= kernel.uvm.pages.length) return reply(res, 404, 'text/plain', 'no such frame\n');
    return reply(res, 200, 'application/json', JSON.stringify(kernel.frameInfo(frame)));
  }
  reply(res, 404, 'text/plain', 'not found\n');
}

function reply(res: http.ServerResponse, status: number, type: string, body: string | Buffer): void {
  res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store' });
  res.end(body);
}

function openStream(
  kernel: Kernel,
  title: string,
  res: http.ServerResponse,
  streams: Map<http.ServerResponse, number>,
): void {
  res.writeHead(200, {
    'content-type': 'text/event-stream',
    'cache-control': 'no-store',
    connection: 'keep-alive',
  });
  res.write(
    `event: legend\ndata: ${JSON.stringify({ title, states: FRAME_STATE_NAMES, frames: kernel.uvm.pages.length })}\n\n`,
  );
  streams.set(res, 0);
  res.on('close', () => streams.delete(res));
}

/* broadcast: one update to every open stream that is keeping up */
function broadcast(
  kernel: Kernel,
  streams: Map<http.ServerResponse, number>,
  states: Uint8Array,
  trace: { trace: TraceEvent[]; dropped: number },
): void {
  if (streams.size === 0) return;
  kernel.frameStates(states);
  const update = {
    states: Buffer.from(states.buffer, states.byteOffset, states.length).toString('base64'),
    stats: kernel.stats(),
    mbuf: mbufStats(kernel),
    ...trace,
  };
  const msg = `data: ${JSON.stringify(update)}\n\n`;
  for (const [res, missed] of streams) {
    if (res.writableLength >= STREAM_BACKLOG_MAX) {
      /* a browser this far behind skips the update; its trace events are counted as dropped */
      streams.set(res, missed + trace.trace.length + trace.dropped);
    } else if (missed > 0) {
      streams.set(res, 0);
      res.write(`data: ${JSON.stringify({ ...update, dropped: update.dropped + missed })}\n\n`);
    } else res.write(msg);
  }
}
