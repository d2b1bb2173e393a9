/*
 * Random sends match a byte-stream model. fast-check drives one socket over real TCP with random
 * interleavings of: sends (copy, loan, auto; 1 byte to a few MiB; never awaited at the call), writes
 * by the process to the buffers it is sending from, the peer pausing and resuming, buffers unmapped
 * (and mapped again), the process exiting (and a new one taking over), and an end: a close, a
 * destroy() or a reset by the peer. The model is a byte stream: each send contributes, in call order,
 * the bytes its range held *when send() was called* -- all of them if it resolved, the first
 * `bytesSent` if it failed with a SendError, none if it was refused at the call. After a close the
 * peer must have received exactly that stream; after a destroy or a reset, a prefix of it. After
 * every run nothing is left: no loan, wire, pin, cluster, budget page or process, and the kernel's
 * books balance.
 */
import net from 'node:net';
import type { Kernel, Proc } from '@loanout/core';
import { mbufInit } from '@loanout/mbuf';
import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import { SendError, type SendMode, type Socket, sockConnect } from '../src/index.js';
import { expectAtRest, KiB, MiB, pattern, Scope, tick, until } from './helpers.js';

const scope = new Scope();
afterEach(() => scope.cleanup());

const NBUF = 3;
const BUF = 2 * MiB + 4321;

type Cmd =
  | { t: 'send'; buf: number; off: number; len: number; mode: SendMode }
  | { t: 'write'; buf: number; off: number; len: number; seed: number }
  | { t: 'pause' }
  | { t: 'resume' }
  | { t: 'tick' }
  | { t: 'settle' }
  | { t: 'remap'; buf: number }
  | { t: 'exit' };
type End = 'close' | 'destroy' | 'reset';

const size = fc.oneof(
  fc.integer({ min: 1, max: 64 }),
  fc.integer({ min: 1, max: 96 * KiB }),
  fc.integer({ min: 1, max: BUF }),
);
const span = fc
  .tuple(fc.integer({ min: 0, max: NBUF - 1 }), fc.integer({ min: 0, max: BUF - 1 }), size)
  .map(([buf, off, len]) => ({ buf, off, len: Math.min(len, BUF - off) }));
const cmd: fc.Arbitrary<Cmd> = fc.oneof(
  {
    weight: 6,
    arbitrary: fc
      .tuple(span, fc.constantFrom<SendMode>('copy', 'loan', 'auto'))
      .map(([s, mode]) => ({ t: 'send' as const, ...s, mode })),
  },
  {
    weight: 4,
    arbitrary: fc
      .tuple(span, fc.integer({ min: 1, max: 255 }))
      .map(([s, seed]) => ({ t: 'write' as const, ...s, seed })),
  },
  { weight: 1, arbitrary: fc.constant({ t: 'pause' as const }) },
  { weight: 2, arbitrary: fc.constant({ t: 'resume' as const }) },
  { weight: 1, arbitrary: fc.constant({ t: 'tick' as const }) },
  { weight: 1, arbitrary: fc.constant({ t: 'settle' as const }) },
  {
    weight: 1,
    arbitrary: fc.integer({ min: 0, max: NBUF - 1 }).map((buf) => ({ t: 'remap' as const, buf })),
  },
  { weight: 1, arbitrary: fc.constant({ t: 'exit' as const }) },
);
const setup = fc.record({
  sendHighWater: fc.constantFrom(16 * KiB, 256 * KiB, MiB),
  kvaBudgetBytes: fc.constantFrom(64 * KiB, 16 * MiB),
  autoThreshold: fc.constantFrom(1, 16 * KiB, 1 << 30),
});

/* the peer: a plain node:net server socket we can pause, resume and reset, and what it received */
interface PlainPeer {
  sock: net.Socket;
  parts: Buffer[];
  closed: Promise<void>;
}

async function connect(k: Kernel, opts: { sendHighWater: number; autoThreshold: number }) {
  let peer: PlainPeer | null = null;
  const server = net.createServer((sock) => {
    const parts: Buffer[] = [];
    sock.on('data', (d: Buffer) => parts.push(d));
    sock.on('error', () => {});
    peer = { sock, parts, closed: new Promise((r) => sock.once('close', () => r())) };
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  scope.defer(() => new Promise<void>((r) => server.close(() => r())));
  scope.defer(() => peer?.sock.destroy());
  const so = scope.socket(
    await sockConnect(k, { port: (server.address() as net.AddressInfo).port, ...opts }),
  );
  await until(() => peer !== null, 'the peer accepts');
  return { so, peer: peer as unknown as PlainPeer };
}

/* one send as the model sees it: the bytes at the call, and how it ended */
interface Sent {
  bytes: Buffer;
  outcome: Promise<number>;
}

/* the process and its buffers, with the model's copy of their bytes */
class World {
  proc!: Proc;
  vas: number[] = [];
  model: Buffer[] = [];
  constructor(readonly k: Kernel) {
    this.spawn();
  }

  spawn(): void {
    this.proc = this.k.createProcess();
    this.vas = [];
    this.model = [];
    for (let b = 0; b < NBUF; b++) this.map(b);
  }

  /* map buffer b afresh: untouched memory, all zeros (the zero page until written) */
  map(b: number): void {
    this.vas[b] = this.proc.mmap(BUF);
    this.model[b] = Buffer.alloc(BUF);
  }
}

interface Setup {
  sendHighWater: number;
  kvaBudgetBytes: number;
  autoThreshold: number;
}

async function run(cmds: Cmd[], end: End, opts: Setup) {
  const k = scope.kernel({ physPages: 8192, swapPages: 0 });
  mbufInit(k, { kvaBudgetBytes: opts.kvaBudgetBytes });
  const { so, peer } = await connect(k, opts);
  const w = new World(k);
  const sends: Sent[] = [];
  for (const c of cmds) await step(w, so, peer, sends, c);
  await finish(so, peer, sends, end);
  await until(() => so.pendingSends === 0, 'every send settles');
  for (const p of k.processes) p.exit();
  expect(k.stats().anons).toBe(0);
  expectAtRest(k);
}

async function step(w: World, so: Socket, peer: PlainPeer, sends: Sent[], c: Cmd): Promise<void> {
  switch (c.t) {
    case 'send': {
      const bytes = Buffer.from(w.model[c.buf].subarray(c.off, c.off + c.len));
      const outcome = so.send(w.proc, w.vas[c.buf] + c.off, c.len, { mode: c.mode }).then(
        (r) => r.bytes,
        (err) => (err instanceof SendError ? err.bytesSent : 0),
      );
      sends.push({ bytes, outcome });
      return;
    }
    case 'write': {
      const bytes = pattern(c.len, c.seed);
      await w.proc.write(w.vas[c.buf] + c.off, bytes);
      bytes.copy(w.model[c.buf], c.off);
      return;
    }
    case 'pause':
      peer.sock.pause();
      return;
    case 'resume':
      peer.sock.resume();
      return;
    case 'tick':
      await tick(2);
      return;
    case 'settle':
      peer.sock.resume();
      await Promise.all(sends.map((s) => s.outcome));
      return;
    case 'remap':
      w.proc.munmap(w.vas[c.buf], BUF);
      w.map(c.buf);
      return;
    case 'exit':
      w.proc.exit();
      w.spawn();
      return;
  }
}

/* finish: end the run as `end` says, and compare what the peer got with the model's stream */
async function finish(so: Socket, peer: PlainPeer, sends: Sent[], end: End): Promise<void> {
  peer.sock.resume();
  if (end === 'close') await so.close();
  else if (end === 'destroy') so.destroy();
  else peer.sock.resetAndDestroy();
  const counts = await Promise.all(sends.map((s) => s.outcome));
  const stream = Buffer.concat(sends.map((s, i) => s.bytes.subarray(0, counts[i])));
  if (end !== 'close') {
    await so.close().catch(() => undefined);
    peer.sock.destroy();
  }
  await peer.closed;
  const got = Buffer.concat(peer.parts);
  if (end === 'close') {
    expect(got.length).toBe(stream.length);
    expect(got.equals(stream)).toBe(true);
  } else {
    expect(got.length).toBeLessThanOrEqual(stream.length);
    expect(got.equals(stream.subarray(0, got.length))).toBe(true);
  }
}

describe('random sends, writes, pauses, unmaps and exits', () => {
  it('deliver exactly the bytes at each call, in call order, and leave nothing behind', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(cmd, { minLength: 1, maxLength: 14 }),
        fc.constantFrom<End>('close', 'close', 'destroy', 'reset'),
        setup,
        async (cmds, end, opts) => {
          await run(cmds, end, opts);
          await scope.cleanup();
        },
      ),
      { numRuns: 25, endOnFailure: true },
    );
  }, 120_000);
});
