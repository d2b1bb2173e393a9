/*
 * page-map-server.ts: a live page map of a running loanout kernel, served on loopback.
 *
 * A small node:http server hands out the page, its script and its icon (static/, no CDN) and a
 * Server-Sent Events stream. A stream opens with a `legend` (the title, the frame states' names, the
 * number of frames, and the clock the trace's times are measured on) and an update at once, so the
 * page never waits blank; then, every intervalMs, an update: one byte per physical frame (its state,
 * kernel.frameStates()), the frames that came in by page transfer (page-map-trace.ts), the kernel's
 * counters, the mbuf counters (bytes loaned and copied to the network, received by copy and by
 * transfer), the trace events since the last update, and the walkthrough's step if one runs. On
 * close() every stream gets a `bye` before it ends, so a page can tell "the server stopped" from "the
 * network failed". /frame/N describes one frame in full.
 *
 * A walkthrough (page-map-walkthrough.ts) narrates on the page: each step's words go out at once, in
 * an update of their own taken after the step happened, and /control lets the page pause, resume or
 * step it (page-map-control.ts says who may). The server listens on 127.0.0.1 only, answers only
 * requests addressed to a loopback name, and subscribes to the trace only while it runs.
 */
import { readFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { checkKernel, FRAME_STATE_NAMES, type Kernel, KernelError } from '@loanout/core';
import { mbufStats } from '@loanout/mbuf';
import { hostAllowed, readControl } from './page-map-control.js';
import { TraceWindow } from './page-map-trace.js';
import {
  checkWalkthroughOptions,
  type Walkthrough,
  type WalkthroughOptions,
  WalkthroughRun,
} from './page-map-walkthrough.js';

/** What {@link startPageMap} accepts; every field is optional. */
export interface PageMapOptions {
  /** the port to listen on, an integer 0..65535; default 0: any free port (the host is always 127.0.0.1) */
  port?: number;
  /** milliseconds between two updates, at least 20; default 250 */
  intervalMs?: number;
  /** what is running, shown as the page's heading and title; default "loanout" */
  title?: string;
  /** a sentence under the heading: what is running and how to drive it; default none */
  about?: string;
}

/** A running page map, as {@link startPageMap} returns it. */
export interface PageMap {
  /** where to open it, `http://127.0.0.1:<port>/` */
  readonly url: string;
  /** browsers (event streams) open now */
  viewers(): number;
  /**
   * walkthrough: narrate steps on the page, and let the viewer pause, resume and step them there.
   * => opts: as {@link WalkthroughOptions}
   * => returns the walkthrough; the page shows its steps and controls from its first step on
   * => throws KernelError EINVAL (bad options), EBUSY (a walkthrough not yet done), ESHUTDOWN (closed)
   */
  walkthrough(opts?: WalkthroughOptions): Walkthrough;
  /** stop serving, end every stream, release a waiting walkthrough step, unsubscribe from the trace */
  close(): Promise<void>;
}

/* a stream that has this much unsent is skipped until its browser catches up */
const STREAM_BACKLOG_MAX = 1 << 20;

/* a title or about longer than this is refused: it is a heading, not a document */
const TEXT_MAX = 2000;

/*
 * The page, its script and its icon live in the package's static/ directory, beside src/ and dist/:
 * the same relative URL finds them from the source (tests, examples) and from the built, installed
 * package. Browsers that ignore the page's <link rel="icon"> ask for /favicon.ico: they get the SVG.
 */
const STATIC_DIR = new URL('../static/', import.meta.url);
const STATIC: Record<string, { file: string; type: string }> = {
  '/': { file: 'index.html', type: 'text/html; charset=utf-8' },
  '/app.js': { file: 'app.js', type: 'text/javascript; charset=utf-8' },
  '/favicon.svg': { file: 'favicon.svg', type: 'image/svg+xml' },
  '/favicon.ico': { file: 'favicon.svg', type: 'image/svg+xml' },
};

/**
 * startPageMap: serve the live page map of `kernel` on 127.0.0.1.
 * => kernel: a Kernel of @loanout/core; opts: as {@link PageMapOptions}, checked before anything starts
 * => resolves to the running map, subscribed to the kernel's trace until its close()
 * => throws KernelError EINVAL (not a kernel, bad options), EADDRINUSE (the port is taken), EIO
 */
export async function startPageMap(kernel: Kernel, opts: PageMapOptions = {}): Promise<PageMap> {
  const options = checkOptions(kernel, opts);
  const map = new PageMapServer(kernel, options);
  await map.listen(options.port);
  return {
    url: map.url,
    viewers: () => map.streams.size,
    walkthrough: (wopts = {}) => map.walkthrough(wopts),
    close: () => map.close(),
  };
}

function checkOptions(kernel: Kernel, opts: PageMapOptions): Required<PageMapOptions> {
  checkKernel('page map', kernel);
  if (opts === null || typeof opts !== 'object') throw new KernelError('EINVAL', 'page map: bad options');
  const { intervalMs = 250, port = 0, title = 'loanout', about = '' } = opts;
  if (!Number.isFinite(intervalMs) || intervalMs < 20)
    throw new KernelError('EINVAL', `page map: intervalMs must be a number >= 20, not ${String(intervalMs)}`);
  if (!Number.isInteger(port) || port < 0 || port > 65535)
    throw new KernelError('EINVAL', `page map: port must be an integer 0..65535, not ${String(port)}`);
  for (const [name, s] of [
    ['title', title],
    ['about', about],
  ] as const)
    if (typeof s !== 'string' || s.length > TEXT_MAX)
      throw new KernelError('EINVAL', `page map: ${name} must be a string of at most ${TEXT_MAX} characters`);
  return { intervalMs, port, title, about };
}

/* PageMapServer: the server, its streams, the trace it keeps, and the walkthrough if one runs */
class PageMapServer {
  /* open event streams, each with the trace events it missed while it lagged */
  readonly streams = new Map<http.ServerResponse, number>();
  url = '';
  private readonly trace: TraceWindow;
  private readonly states: Uint8Array;
  private readonly server: http.Server;
  private readonly unsubscribe: () => void;
  private readonly clock = { startedAt: performance.now(), startedWall: Date.now() };
  private timer: ReturnType<typeof setInterval> | null = null;
  private walk: WalkthroughRun | null = null;
  private closed = false;

  constructor(
    private readonly kernel: Kernel,
    private readonly opts: Required<PageMapOptions>,
  ) {
    const frames = kernel.uvm.pages.length;
    this.trace = new TraceWindow(frames);
    this.states = new Uint8Array(frames);
    this.unsubscribe = kernel.onTrace((ev) => this.trace.push(ev));
    this.server = http.createServer((req, res) =>
      this.route(req, res).catch((err: Error) => {
        if (!res.headersSent) reply(res, 500, 'text/plain', `page map: ${err.message}\n`);
        else res.destroy();
      }),
    );
  }

  /* listen: on 127.0.0.1:port, then update every intervalMs; on failure nothing is left running */
  listen(port: number): Promise<void> {
    return new Promise((resolve, reject) => {
      this.server.once('error', (err: NodeJS.ErrnoException) => {
        this.unsubscribe();
        const code = err.code === 'EADDRINUSE' ? 'EADDRINUSE' : 'EIO';
        reject(new KernelError(code, `page map: ${err.message}`));
      });
      this.server.listen({ host: '127.0.0.1', port }, () => {
        this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/`;
        this.timer = setInterval(() => this.broadcast(), this.opts.intervalMs);
        resolve();
      });
    });
  }

  walkthrough(opts: WalkthroughOptions): Walkthrough {
    checkWalkthroughOptions(opts);
    if (this.closed) throw new KernelError('ESHUTDOWN', 'page map walkthrough: the page map is closed');
    if (this.walk !== null && this.walk.state !== 'done')
      throw new KernelError('EBUSY', 'page map walkthrough: one is running already');
    this.walk = new WalkthroughRun({ ...opts }, () => this.broadcast());
    return this.walk;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.timer !== null) clearInterval(this.timer);
    this.unsubscribe();
    this.walk?.close();
    for (const res of this.streams.keys()) res.end('event: bye\ndata: {}\n\n');
    await new Promise<void>((r) => this.server.close(() => r()));
  }

  private async route(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    if (!hostAllowed(req)) return reply(res, 403, 'text/plain', 'the page map answers only to 127.0.0.1\n');
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    if (url.pathname === '/control') return this.control(req, res);
    if (req.method !== 'GET') return reply(res, 405, 'text/plain', 'GET only\n');
    const file = STATIC[url.pathname];
    if (file !== undefined) return reply(res, 200, file.type, await readFile(new URL(file.file, STATIC_DIR)));
    if (url.pathname === '/events') return this.openStream(res);
    const m = /^\/frame\/(\d+)$/.exec(url.pathname);
    if (m !== null) {
      const frame = Number(m[1]);
      if (frame >= this.states.length) return reply(res, 404, 'text/plain', 'no such frame\n');
      return reply(res, 200, 'application/json', JSON.stringify(this.kernel.frameInfo(frame)));
    }
    reply(res, 404, 'text/plain', 'not found\n');
  }

  /* control: a walkthrough action from the page (page-map-control.ts says which requests are one) */
  private async control(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const c = await readControl(req);
    if ('status' in c) return replyJson(res, c.status, { error: c.error });
    const walk = this.walk;
    if (walk === null) return replyJson(res, 409, { error: 'no walkthrough is running' });
    const refused = walk.act(c.action, c.step);
    if (refused !== null) return replyJson(res, 409, { error: refused });
    replyJson(res, 200, { narration: walk.view() });
  }

  private openStream(res: http.ServerResponse): void {
    res.writeHead(200, {
      'content-type': 'text/event-stream',
      'cache-control': 'no-store',
      connection: 'keep-alive',
    });
    const { title, about, intervalMs } = this.opts;
    const legend = { title, about, intervalMs, states: FRAME_STATE_NAMES, frames: this.states.length };
    res.write(`event: legend\ndata: ${JSON.stringify({ ...legend, clock: this.clock })}\n\n`);
    /* the first update at once, with no trace (the events since the last update are everyone's) */
    res.write(`data: ${JSON.stringify(this.update({ trace: [], dropped: 0, kinds: {} }))}\n\n`);
    this.streams.set(res, 0);
    res.on('close', () => this.streams.delete(res));
  }

  /* update: the frames, counters and walkthrough now, with the trace given */
  private update(trace: ReturnType<TraceWindow['take']>) {
    this.kernel.frameStates(this.states);
    this.trace.forgetGone(this.states);
    const arrived = this.trace.arrived;
    return {
      now: performance.now(),
      states: Buffer.from(this.states.buffer, this.states.byteOffset, this.states.length).toString('base64'),
      arrived: Buffer.from(arrived.buffer, arrived.byteOffset, arrived.length).toString('base64'),
      stats: this.kernel.stats(),
      mbuf: mbufStats(this.kernel),
      narration: this.walk?.view() ?? null,
      ...trace,
    };
  }

  /* broadcast: one update to every open stream that is keeping up */
  private broadcast(): void {
    if (this.closed) return;
    /* with no one watching, the events are let go (a page that opens later starts from now) */
    const trace = this.trace.take();
    if (this.streams.size === 0) return;
    const update = this.update(trace);
    const msg = `data: ${JSON.stringify(update)}\n\n`;
    for (const [res, missed] of this.streams) {
      if (res.writableLength >= STREAM_BACKLOG_MAX) {
        /* a browser this far behind skips the update; its trace events are counted as dropped */
        this.streams.set(res, missed + trace.trace.length + trace.dropped);
      } else if (missed > 0) {
        this.streams.set(res, 0);
        res.write(`data: ${JSON.stringify({ ...update, dropped: update.dropped + missed })}\n\n`);
      } else res.write(msg);
    }
  }
}

function reply(res: http.ServerResponse, status: number, type: string, body: string | Buffer): void {
  res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store' });
  res.end(body);
}

function replyJson(res: http.ServerResponse, status: number, body: unknown): void {
  reply(res, status, 'application/json', JSON.stringify(body));
}
