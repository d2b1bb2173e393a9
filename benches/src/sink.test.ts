import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { SERVICES, type Sink, startSink } from './sink.js';
import { delta, SinkSession } from './sink-client.js';

const open: { close(): Promise<void> }[] = [];
afterEach(async () => {
  for (const x of open.splice(0).reverse()) await x.close();
});

async function sink(): Promise<Sink> {
  const s = await startSink('127.0.0.1', 0);
  open.push(s);
  return s;
}

async function session(s: Sink): Promise<SinkSession> {
  const c = await SinkSession.connect('127.0.0.1', s.port, null);
  open.push(c);
  return c;
}

/* exchange: connect to port, write `bytes`, read until as many come back (or the other side closes) */
function exchange(port: number, bytes: Buffer, expectBack: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let got = 0;
    const sock = net.connect({ host: '127.0.0.1', port }, () => {
      sock.write(bytes);
      if (expectBack === 0) sock.end();
    });
    sock.on('data', (d: Buffer) => {
      chunks.push(d);
      got += d.length;
      if (got >= expectBack) sock.end();
    });
    sock.on('error', reject);
    sock.on('close', () => resolve(Buffer.concat(chunks)));
  });
}

/* controlLines: raw lines to the control port, on one connection, and the replies */
function controlLines(port: number, lines: string[]): Promise<Record<string, unknown>[]> {
  return new Promise((resolve, reject) => {
    let buf = '';
    const sock = net.connect({ host: '127.0.0.1', port }, () => sock.write(lines.join('')));
    sock.setEncoding('utf8');
    sock.on('data', (d: string) => {
      buf += d;
      const replies = buf.split('\n').slice(0, -1);
      if (replies.length >= lines.length) {
        sock.destroy();
        resolve(replies.map((r) => JSON.parse(r)));
      }
    });
    sock.on('error', reject);
  });
}

describe('the sink', () => {
  it('says hello with a port per service and its machine', async () => {
    const s = await sink();
    const c = await session(s);
    expect(Object.keys(c.ports)).toEqual(SERVICES.map((x) => x.name));
    expect(c.ports).toEqual(s.ports);
    const ports = Object.values(c.ports);
    expect(new Set([...ports, s.port]).size).toBe(ports.length + 1);
    expect(c.machine).toMatchObject({ node: process.version });
    expect(c.machine!.cores).toBeGreaterThan(0);
  });

  it('counts what its discard service received, once the connection has settled', async () => {
    const s = await sink();
    const c = await session(s);
    const before = await c.stats();
    await exchange(c.port('discard'), Buffer.alloc(300_000, 7), 0);
    const after = await c.settle();
    expect(delta(before, after, 'discard')).toEqual({ bytes: 300_000 });
  });

  it('echoes every byte on each echo service; the kernel servers loan or copy as their mode says', async () => {
    const s = await sink();
    const c = await session(s);
    const before = await c.stats();
    const msg = Buffer.from(Array.from({ length: 20_000 }, (_, i) => (i * 31) & 0xff));
    for (const mode of ['copy', 'loan', 'raw']) {
      const back = await exchange(c.port(`echo-${mode}`), msg, msg.length);
      expect(back.equals(msg), mode).toBe(true);
    }
    const after = await c.settle();
    for (const mode of ['copy', 'loan', 'raw'])
      expect(delta(before, after, `echo-${mode}`).bytesEchoed, mode).toBe(20_000);
    expect(delta(before, after, 'echo-copy')).toMatchObject({ loanedBytes: 0, copiedBytes: 20_000 });
    expect(delta(before, after, 'echo-loan')).toMatchObject({ copiedBytes: 0 });
    expect(delta(before, after, 'echo-loan').loanedBytes).toBeGreaterThan(0);
  });

  it('serves one bench at a time: a second session is told busy; after the first closes, it may come', async () => {
    const s = await sink();
    const first = await SinkSession.connect('127.0.0.1', s.port, null);
    await expect(SinkSession.connect('127.0.0.1', s.port, null)).rejects.toThrow(/busy/);
    await first.close();
    let again: SinkSession | null = null;
    for (let i = 0; i < 50 && again === null; i++) {
      again = await SinkSession.connect('127.0.0.1', s.port, null).catch(() => null);
      if (again === null) await new Promise((r) => setTimeout(r, 20));
    }
    expect(again).not.toBeNull();
    await again!.close();
  });

  it('answers a line that is not JSON, or an unknown op, with an error', async () => {
    const s = await sink();
    expect(await controlLines(s.port, ['hello\n', '{"op":"reboot"}\n', '{"op":"stats"}\n'])).toEqual([
      { ok: false, error: 'bad request: not JSON' },
      { ok: false, error: 'unknown op reboot' },
      expect.objectContaining({ ok: true, services: expect.objectContaining({ discard: { bytes: 0 } }) }),
    ]);
  });

  it('names the service and the port it cannot listen on', async () => {
    const blocker = net.createServer();
    await new Promise<void>((r) => blocker.listen({ host: '127.0.0.1', port: 0 }, r));
    const taken = (blocker.address() as net.AddressInfo).port;
    try {
      await expect(startSink('127.0.0.1', taken - 1)).rejects.toThrow(
        `sink: discard cannot listen on 127.0.0.1:${taken}`,
      );
    } finally {
      await new Promise<void>((r) => blocker.close(() => r()));
    }
  });

  it('frees every port when closed', async () => {
    const s = await startSink('127.0.0.1', 0);
    await s.close();
    for (const port of [s.port, ...Object.values(s.ports)]) {
      const refused = await new Promise<boolean>((resolve) => {
        const sock = net.connect({ host: '127.0.0.1', port });
        sock.on('connect', () => {
          sock.destroy();
          resolve(false);
        });
        sock.on('error', () => resolve(true));
      });
      expect(refused, String(port)).toBe(true);
    }
  });
});
