/*
 * A graceful close loses nothing that `done` reported delivered. If the peer sent us bytes we never
 * read, a plain close of the host socket is answered with a reset, and the reset can make the peer's
 * host drop what it had not yet handed to the peer's program. So close() sends its FIN, keeps reading
 * (and discarding) until the peer's FIN, and only then lets go. A peer that resets instead is an
 * error, not a success; a linger that runs out with data unsent is an error too (ETIMEDOUT).
 */
import { randomFillSync } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Kernel, Prot } from '@loanout/core';
import { afterEach, describe, expect, it } from 'vitest';
import { type Socket, sockConnect } from '../src/index.js';
import {
  type Drained,
  drain,
  expectAtRest,
  failure,
  KiB,
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

/* a peer that does not read (until resume) and does `act` with its end as it is accepted */
async function slowPeer(act: (s: net.Socket) => void) {
  let remote!: net.Socket;
  let got!: Promise<Drained>;
  const peer = await scope.peer((s) => {
    remote = s;
    s.pause();
    got = drain(s);
    act(s);
  });
  return { port: peer.port, remote: () => remote, got: () => got };
}

/* close's outcome: null if it resolved, else its error */
async function outcome(closing: Promise<void>): Promise<unknown> {
  try {
    await closing;
    return null;
  } catch (err) {
    return err;
  }
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

  it('close while a recv copy sleeps on a page-in: what arrives is still read and dropped, no reset', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'loanout-close-'));
    scope.defer(() => rm(dir, { recursive: true, force: true }));
    await writeFile(join(dir, 'f'), Buffer.alloc(64 * KiB, 1));
    const k = scope.kernel({ physPages: 8192 });
    /* the peer floods us with 4 MiB, then its FIN */
    const peer = await slowPeer((s) => {
      s.write(randomFillSync(Buffer.alloc(4 * MiB)));
      s.end();
    });
    const so = scope.socket(await sockConnect(k, { port: peer.port }));
    await until(() => peer.remote() !== undefined, 'the peer accepts');
    const p = k.createProcess();
    const data = pattern(256 * KiB, 5);
    const va = await userMemory(p, data.length, data);
    await (await so.send(p, va, data.length, { mode: 'copy' })).done;
    const unread = () => (so as unknown as { rcv: { cc: number } }).rcv.cc;
    await stalled(unread, 'the flood');
    /* a recv whose copy must page in a file page, and a close while it sleeps there */
    const dst = await p.mmapFile(join(dir, 'f'), { prot: Prot.READ | Prot.WRITE });
    const reading = so.recv(p, dst, 16 * KiB);
    for (let i = 0; i < 5; i++) await Promise.resolve();
    expect((so as unknown as { copying: boolean }).copying).toBe(true);
    const closed = await outcome(so.close({ linger: 300 }));
    expect(await reading).toBe(16 * KiB);
    peer.remote().resume();
    const got = await peer.got();
    /* either the peer has every byte of the done send, or close() said it could not promise it */
    expect(closed !== null || (got.error === null && got.bytes.equals(data))).toBe(true);
    p.exit();
    expectAtRest(k);
  });

  it('a peer still sending when the linger runs out: close says the data may be lost (ETIMEDOUT)', async () => {
    const k = scope.kernel({ physPages: 8192 });
    let sending = true;
    const peer = await slowPeer((s) => {
      const chunk = Buffer.alloc(64 * KiB, 9);
      const more = () => {
        while (sending && !s.destroyed && s.write(chunk)) {}
        if (sending && !s.destroyed) s.once('drain', more);
      };
      more();
    });
    const so: Socket = scope.socket(await sockConnect(k, { port: peer.port }));
    await until(() => peer.remote() !== undefined, 'the peer accepts');
    const p = k.createProcess();
    const data = pattern(256 * KiB, 5);
    const va = await userMemory(p, data.length, data);
    await (await so.send(p, va, data.length, { mode: 'loan' })).done;
    const closed = await outcome(so.close({ linger: 200 }));
    sending = false;
    peer.remote().resume();
    const got = await peer.got();
    expect(closed).toMatchObject({ code: 'ETIMEDOUT' });
    /* and it was right to: the reset cost the peer what it had not read */
    expect(got.error !== null || got.bytes.equals(data)).toBe(true);
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

  it('a peer that never closes: once the linger is over, close lets go without a reset, and says it could not wait (ETIMEDOUT)', async () => {
    const k = scope.kernel();
    const { so, remote } = await halfOpenPair(k);
    let reset = false;
    remote.on('error', () => {
      reset = true;
    });
    const p = k.createProcess();
    const va = await userMemory(p, 4096);
    await (await so.send(p, va, 4096, { mode: 'loan' })).done;
    expect((await failure(so.close({ linger: 50 }))).code).toBe('ETIMEDOUT');
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
