/*
 * sink-client.ts: the bench's side of the sink's control port (sink.ts) -- and where the sink is.
 *
 * A network suite opens a session: by default the bench forks a sink of its own (sink-main.ts, on
 * 127.0.0.1 and free ports) and closes it when the suite ends; with --peer it talks to a sink someone
 * started on another host (`pnpm sink`), which stays up. Either way the suite sees the same thing --
 * a host, a data port per service, and `stats`/`settle` to count what the far side got -- so the
 * loopback and two-host runs share every line of the measuring code.
 */
import net from 'node:net';
import { type Child, closeChild, startChild } from './children.js';
import { PROTOCOL } from './sink.js';

/** a sink someone started on another host: `pnpm bench --peer HOST:PORT` */
export interface Peer {
  host: string;
  port: number;
}

/** the far machine as hello told it */
export interface SinkMachine {
  node: string;
  cpu: string;
  cores: number;
  os: string;
}

/** what `stats` and `settle` answer: CPU and wall time of the sink so far, and each service's counters */
export interface SinkStats {
  cpuMs: number;
  wallMs: number;
  services: Record<string, Record<string, number>>;
}

interface Reply {
  ok: boolean;
  error?: string;
  [k: string]: unknown;
}

/**
 * SinkSession: one control connection to a sink, and the sink's data ports.
 */
export class SinkSession {
  private buf = '';
  private readonly pending: { resolve: (r: Reply) => void; reject: (e: Error) => void }[] = [];
  private error: Error | null = null;
  ports: Record<string, number> = {};
  machine: SinkMachine | null = null;

  private constructor(
    /** where the data ports are */
    readonly host: string,
    /** host:port of the control port, for messages and the record */
    readonly address: string,
    private readonly sock: net.Socket,
    private readonly child: Child | null,
  ) {
    sock.setEncoding('utf8');
    sock.on('data', (chunk: string) => this.onData(chunk));
    sock.on('error', (err) => this.fail(err));
    sock.on('close', () => this.fail(new Error(`sink ${address}: control connection closed`)));
  }

  /**
   * connect: open a session with the sink whose control port is host:port, and say hello.
   * => child: the local sink process to close with the session, or null
   * => throws if the sink can't be reached, is busy, or speaks another protocol
   */
  static async connect(host: string, port: number, child: Child | null): Promise<SinkSession> {
    const address = host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
    const sock = await new Promise<net.Socket>((resolve, reject) => {
      const s = net.connect({ host, port });
      const t = setTimeout(() => s.destroy(new Error('no answer within 10 s')), 10_000);
      s.once('error', (err) => {
        clearTimeout(t);
        reject(new Error(`cannot reach the sink's control port ${address}: ${err.message}`));
      });
      s.once('connect', () => {
        clearTimeout(t);
        s.removeAllListeners('error');
        resolve(s);
      });
    });
    const session = new SinkSession(host, address, sock, child);
    try {
      const hello = await session.request('hello');
      if (hello.protocol !== PROTOCOL)
        throw new Error(`sink ${address} speaks protocol ${String(hello.protocol)}, this bench ${PROTOCOL}`);
      session.ports = hello.ports as Record<string, number>;
      const { node, cpu, cores, os } = hello as unknown as SinkMachine;
      session.machine = { node, cpu, cores, os };
      return session;
    } catch (err) {
      sock.destroy();
      throw err;
    }
  }

  /**
   * port: the data port of a service.
   * => throws if the sink doesn't offer it (an older sink)
   */
  port(service: string): number {
    const p = this.ports[service];
    if (typeof p !== 'number') throw new Error(`sink ${this.address} offers no ${service} service`);
    return p;
  }

  /** stats: the sink's counters now */
  async stats(): Promise<SinkStats> {
    return (await this.request('stats')) as unknown as SinkStats;
  }

  /** settle: the sink's counters once no data connection is open on it (at most 5 s later) */
  async settle(): Promise<SinkStats> {
    return (await this.request('settle', 15_000)) as unknown as SinkStats;
  }

  /**
   * request: one control request and its reply.
   * => throws on an error reply, a closed connection, or no reply within timeoutMs
   */
  request(op: string, timeoutMs = 10_000): Promise<Reply> {
    if (this.error !== null) return Promise.reject(this.error);
    return new Promise<Reply>((resolve, reject) => {
      const t = setTimeout(() => this.fail(new Error(`sink ${this.address}: no reply to ${op}`)), timeoutMs);
      this.pending.push({
        resolve: (r) => {
          clearTimeout(t);
          if (r.ok) resolve(r);
          else reject(new Error(`sink ${this.address}: ${r.error ?? 'error'}`));
        },
        reject: (e) => {
          clearTimeout(t);
          reject(e);
        },
      });
      this.sock.write(`${JSON.stringify({ op })}\n`);
    });
  }

  /** close: end the session (and stop the sink if this bench started it); never throws */
  async close(): Promise<void> {
    this.sock.destroy();
    if (this.child !== null) await closeChild(this.child);
  }

  private onData(chunk: string): void {
    this.buf += chunk;
    for (let nl = this.buf.indexOf('\n'); nl >= 0; nl = this.buf.indexOf('\n')) {
      const line = this.buf.slice(0, nl);
      this.buf = this.buf.slice(nl + 1);
      let reply: Reply;
      try {
        reply = JSON.parse(line) as Reply;
      } catch {
        this.fail(new Error(`sink ${this.address}: not a sink (a reply that is not JSON)`));
        return;
      }
      this.pending.shift()?.resolve(reply);
    }
  }

  private fail(err: Error): void {
    this.error ??= err;
    this.sock.destroy();
    for (const p of this.pending.splice(0)) p.reject(err);
  }
}

/**
 * openSink: a session with the far side of the network suites.
 * => peer null: forks a sink on 127.0.0.1 (free ports), closed with the session; else connects to
 *    the peer's control port
 * => throws if the sink won't start or can't be reached (a forked one is then stopped)
 */
export async function openSink(peer: Peer | null): Promise<SinkSession> {
  if (peer !== null) return SinkSession.connect(peer.host, peer.port, null);
  const child = await startChild('sink', new URL('./sink-main.ts', import.meta.url), ['--port', '0']);
  try {
    return await SinkSession.connect('127.0.0.1', child.ready.port as number, child);
  } catch (err) {
    await closeChild(child);
    throw err;
  }
}

/**
 * delta: what a service counted between two stats.
 * => missing counters count as 0
 */
export function delta(before: SinkStats, after: SinkStats, service: string): Record<string, number> {
  const a = before.services[service] ?? {};
  const b = after.services[service] ?? {};
  return Object.fromEntries(Object.keys(b).map((k) => [k, (b[k] ?? 0) - (a[k] ?? 0)]));
}
