/*
 * A graceful close loses nothing that `done` reported delivered. If the peer sent us bytes we never
 * read, a plain close of the host socket is answered with a reset, and the reset can make the peer's
 * host drop what it had not yet handed to the peer's program. So close() sends its FIN, keeps reading
 * (and discarding) until the peer's FIN, and only then lets go. A peer that resets instead is an
 * error, not a success; a linger that runs out with data unsent is an error too (ETIMEDOUT).
 */
import { randomFillSync } from 'node:crypto';
import net from 'node:net';
import type { Kernel } from '@loanout/core';
import { afterEach, describe, expect, it } from 'vitest';
import { sockConnect } from '../src/index.js';
import {
  type Drained,
  drain,
  expectAtRest,
  failure,
  MiB,
  pattern,
  Scope,
  settled,
  stalled,
  until,
  userMemory,
} from './helpers.js';

const scope = new Scope();
afterEach(() => scope.cleanup());

/* a peer that floods us with `flood` bytes, reads everything we send, and closes when we do */
async function floodingPeer(flood: number) {
  let got!: Promise<Drained>;
  let remote!: net.Socket;
  const peer = await scope.peer((s) => {
    remote = s;
    got = drain(s);
    s.write(randomFillSync(Buffer.alloc(flood)));
  });
  return { peer, got: () => got, remote: () => remote };
}

describe('close', () => {
  for (const mode of ['loan', 'copy'] as const) {
    it(`${mode}: the peer gets every byte of a done send, though it sent us more than we ever read`, async () => {
      const k = scope.kernel({ physPages: 8192 });
      const f = await floodingPeer(4 * MiB);
      const so = scope.socket(await sockConnect(k, { port: f.peer.port }));
      const p = k.createProcess();
      const data = pattern(2 * MiB, 5);
      const va = await userMemory(p, data.length, data);
      /* the flood fills our receive area and the host's buffers: we never read it */
      await stalled(() => so.stats().bytesReceived + (so.isOpen ? 0 : 1), 'the flood');
      const r = await so.send(p, va, data.length, { mode });
      await r.done;
      await so.close();
      const got = await f.got();
      expect(got.error).toBeNull();
      expect(got.bytes.length).toBe(data.length);
      expect(got.bytes.equals(data)).toBe(true);
      p.exit();
      expectAtRest(k);
    });
  }

  it('a peer that resets while we close is an error (ECONNRESET), and everything is released', async () => {
    const k = scope.kernel();
    let remote!: net.Socket;
    const peer = await scope.peer((s) => {
      remote = s;
      s.pause();
    });
    const so = scope.socket(await sockConnect(k, { port: peer.port }));
    await until(() => remote !== undefined, 'the peer accepts');
    const p = k.createProcess();
    const va = await userMemory(p, 4096);
    await (await so.send(p, va, 4096, { mode: 'loan' })).done;
    const closing = so.close();
    setTimeout(() => remote.resetAndDestroy(), 20);
    expect((await failure(closing)).code).toBe('ECONNRESET');
    p.exit();
    expectAtRest(k);
  });

  it('waits for the peer to close its side, reading and dropping what it still sends', async () => {
    const k = scope.kernel();
    const { so, remote } = await halfOpenPair(k);
    const p = k.createProcess();
    const va = await userMemory(p, 4096);
    await (await so.send(p, va, 4096, { mode: 'copy' })).done;
    const closing = so.close();
    await until(() => remote.readableEnded, 'the peer sees our FIN');
    remote.write(Buffer.alloc(300_000, 7));
    expect(await settled(closing)).toBe(false);
    remote.end();
    await closing;
    p.exit();
    expectAtRest(k);
  });

  it('a peer that never closes: once the linger is over, close lets go gracefully (no reset)', async () => {
    const k = scope.kernel();
    const { so, remote } = await halfOpenPair(k);
    let reset = false;
    remote.on('error', () => {
      reset = true;
    });
    const p = k.createProcess();
    const va = await userMemory(p, 4096);
    await (await so.send(p, va, 4096, { mode: 'loan' })).done;
    await so.close({ linger: 50 });
    await until(() => remote.readableEnded, 'the peer sees our FIN');
    expect(reset).toBe(false);
    p.exit();
    expectAtRest(k);
  });
});

/* a socket connected to a plain peer that reads everything and keeps its side open (allowHalfOpen) */
async function halfOpenPair(k: Kernel) {
  let remote: net.Socket | null = null;
  const server = net.createServer({ allowHalfOpen: true }, (s) => {
    remote = s;
    s.on('data', () => {});
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  scope.defer(() => new Promise<void>((r) => server.close(() => r())));
  scope.defer(() => remote?.destroy());
  const so = scope.socket(await sockConnect(k, { port: (server.address() as net.AddressInfo).port }));
  await until(() => remote !== null, 'the peer accepts');
  return { so, remote: remote as unknown as net.Socket };
}
