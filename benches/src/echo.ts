/*
 * echo.ts: a client streaming through an echo server -- the kernel's echo server sending back by
 * copy or by loan, against a raw node:net echo server (echo-servers.ts, in the sink: a child process
 * on 127.0.0.1, or another host with --peer).
 *
 * The client is the same for all three: plain node:net, writing views of one preallocated buffer in
 * messages of `size` bytes and reading the echo with `onread` into one reusable buffer, counting bytes.
 * It keeps at most a window of bytes outstanding (written, not yet echoed back): max(1 MiB, 2 x size),
 * so the servers stream rather than ping-pong, and memory stays bounded. One operation exchanges about
 * `batch` bytes and ends when every byte written has come back, so no case leaves a backlog behind.
 *
 * The kernel echo server receives with soreceive (a copy out of its receive area into the process's
 * ring buffer) and sends from that buffer: `copy` copies it again into clusters, `loan` loans its
 * pages. So here loaning saves one copy of two, and the raw server, which copies nothing in
 * userland, is the ceiling.
 */
import net from 'node:net';
import { MiB, sendsPerOp } from './plan.js';
import type { BenchCase } from './runner.js';
import { delta, type SinkSession, type SinkStats } from './sink-client.js';
import { type Mode, SUITES } from './suites.js';

/*
 * EchoClient: one connection to an echo server; counts bytes written and echoed.
 */
export class EchoClient {
  written = 0;
  received = 0;
  private readonly waiters: { until: number; resolve: () => void; reject: (e: Error) => void }[] = [];
  private error: Error | null = null;
  private sock: net.Socket | null = null;

  /** connect: open the connection, reading the echo through onread into `inbuf` */
  async connect(host: string, port: number, inbuf: Buffer): Promise<void> {
    const onread = { buffer: inbuf, callback: (n: number) => this.got(n) };
    this.sock = await new Promise<net.Socket>((resolve, reject) => {
      const s = net.connect({ host, port, onread });
      s.once('error', reject);
      s.once('connect', () => {
        s.off('error', reject);
        s.setNoDelay(true);
        resolve(s);
      });
    });
    this.sock.on('error', (err) => this.fail(err));
    this.sock.on('close', () => this.fail(new Error('echo client: connection closed')));
  }

  private got(n: number): boolean {
    this.received += n;
    while (this.waiters.length > 0 && this.waiters[0].until <= this.received) this.waiters.shift()!.resolve();
    return true;
  }

  private fail(err: Error): void {
    this.error ??= err;
    for (const w of this.waiters.splice(0)) w.reject(err);
  }

  /* until: resolve once `n` bytes in all have come back */
  private until(n: number): Promise<void> {
    if (this.error !== null) return Promise.reject(this.error);
    if (this.received >= n) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const w = { until: n, resolve, reject };
      let i = this.waiters.length;
      while (i > 0 && this.waiters[i - 1].until > n) i--;
      this.waiters.splice(i, 0, w);
    });
  }

  /*
   * exchange: write `view` n times, never more than `window` bytes outstanding, and wait for every
   * byte to come back.
   * => throws if the connection fails
   */
  async exchange(view: Buffer, n: number, window: number): Promise<void> {
    const size = view.length;
    for (let i = 0; i < n; i++) {
      if (this.written + size - this.received > window) await this.until(this.written + size - window);
      if (this.error !== null) throw this.error;
      this.sock!.write(view);
      this.written += size;
    }
    await this.until(this.written);
  }

  /* close: end the connection and wait for it to close (at most 5 s) */
  close(): Promise<void> {
    const s = this.sock;
    if (s === null || s.destroyed) return Promise.resolve();
    return new Promise((resolve) => {
      const t = setTimeout(() => s.destroy(), 5_000);
      s.once('close', () => {
        clearTimeout(t);
        resolve();
      });
      s.end();
    });
  }

  destroy(): void {
    this.sock?.destroy();
  }
}

/** the echo clients of a suite, one per mode, and what the sink had counted before they began */
export interface EchoBench {
  sink: SinkSession;
  clients: Partial<Record<Mode, EchoClient>>;
  before: SinkStats;
  outbuf: Buffer;
}

/** what each mode's server echoed of what its client wrote; the kernel servers' loaned and copied bytes */
export type EchoCheck = Record<
  string,
  { written: number; echoed: number; loanedBytes?: number; copiedBytes?: number }
>;

/**
 * setupEcho: connect one client per mode to the sink's echo service of that mode (echo-<mode>).
 * => modes: the suite's modes; throws if the sink lacks one or a connection fails (those made are closed)
 */
export async function setupEcho(sink: SinkSession, modes: readonly Mode[]): Promise<EchoBench> {
  const inbuf = Buffer.allocUnsafe(MiB);
  const outbuf = Buffer.alloc(MiB);
  for (let i = 0; i < MiB; i++) outbuf[i] = (i * 131) & 0xff;
  const b: EchoBench = { sink, clients: {}, before: await sink.stats(), outbuf };
  try {
    for (const mode of modes) {
      const c = new EchoClient();
      await c.connect(sink.host, sink.port(`echo-${mode}`), inbuf);
      b.clients[mode] = c;
    }
    return b;
  } catch (err) {
    for (const c of Object.values(b.clients)) c.destroy();
    throw err;
  }
}

/**
 * echoCases: every mode at each message size, streaming.
 * => one operation exchanges ceil(batch / size) messages of `size` bytes
 */
export function echoCases(b: EchoBench, sizes: number[], batch: number): BenchCase[] {
  const out: BenchCase[] = [];
  for (const size of sizes) {
    for (const mode of SUITES.echo.modes) {
      const n = sendsPerOp(size, batch);
      const view = b.outbuf.subarray(0, size);
      const window = Math.max(MiB, 2 * size);
      const client = b.clients[mode]!;
      out.push({
        suite: 'echo',
        mode,
        size,
        perOp: n,
        bytesPerSend: size,
        run: () => client.exchange(view, n, window),
      });
    }
  }
  return out;
}

/**
 * closeEcho: close the clients, and ask the sink what each server did meanwhile.
 * => never leaves a client open; returns null if the sink couldn't be asked
 */
export async function closeEcho(b: EchoBench): Promise<EchoCheck | null> {
  try {
    await Promise.all(Object.values(b.clients).map((c) => c.close()));
    const after = await b.sink.settle();
    const check: EchoCheck = {};
    for (const [mode, c] of Object.entries(b.clients)) {
      const d = delta(b.before, after, `echo-${mode}`);
      check[mode] = { written: c.written, echoed: d.bytesEchoed ?? 0 };
      if (d.loanedBytes !== undefined)
        Object.assign(check[mode], { loanedBytes: d.loanedBytes, copiedBytes: d.copiedBytes });
    }
    return check;
  } catch {
    return null;
  } finally {
    for (const c of Object.values(b.clients)) c.destroy();
  }
}
