/*
 * Close, destroy and resets mid-stream match a byte-stream model. fast-check drives one socket over
 * real TCP on 127.0.0.1 with random interleavings of sends (copy, loan, auto; 1 byte to 1 MiB; never
 * awaited), writes to the buffers sent from, receives (copy, transfer, auto; never awaited, each into
 * a fresh mapping of its own, so many sleep for data or wait their turn), bytes from the peer, the
 * peer pausing and resuming, turns of the event loop -- and, at random points, the ends of a stream:
 * our close() (a half-close, lingering), close({ linger: 0 }), destroy(); the peer half-closing,
 * closing or resetting its end; the process exiting, a send buffer or a pending recv's buffer
 * unmapped. Any of those may come while sends and recvs are pending, and the run goes on after it
 * (more sends and recvs, which must be refused or end as documented); a run that did not end from our
 * side ends with a close().
 *
 * The model. Each event has a time (the step it happened at); each call the step it was made at and
 * the step it settled at. Then:
 *   - outbound: each send contributes, in call order, the bytes its range held at the call -- all of
 *     them if it resolved, the first `bytesSent` if it failed with a SendError, none if refused at the
 *     call. The peer received a prefix of that stream, always; all of it if it saw a clean end; a
 *     destroy() or linger 0 with no close() before it is a reset there, never a clean end; with no
 *     abort and the peer staying, all of it and a clean end; and all of it, with the end, whenever a
 *     graceful close() resolved. (On an end the peer writes a byte back: that write fails at once on
 *     a reset connection -- node:net on this Node reports a reset that lands while it still has bytes
 *     to read as an end, see the peer below.)
 *   - sends: refused at the call (EPIPE, or the connection's error) once the socket is closing, and
 *     only then or once the peer went away; else resolved whole -- a close() with linger lets them all
 *     go out -- or failed with a code an event while they were pending explains: ECONNABORTED
 *     (destroy), EPIPE (linger 0, the peer gone), ECONNRESET (the peer gone), ESRCH (the process
 *     exited), EFAULT (the buffer unmapped);
 *   - recvs: consume the peer's stream in call order, exactly (each count's bytes where they were
 *     asked for, nothing else in the mapping touched); 0 only once we closed, or the peer ended with
 *     every byte read; after destroy() ECONNABORTED, after close() 0 (or, for one waiting its turn,
 *     what ends a wait); a pending one fails only with a code an event explains, as for sends;
 *   - closes: linger 0, a second close, one after destroy() and a first graceful one resolve, unless
 *     the peer went away (never ETIMEDOUT here: the peer always reads again in time);
 *   - every promise settles within a bounded wait (the test ends by itself), the kernel's books
 *     balance after every step (checkInvariants), and at the end no loan, wire, pin, cluster, budget
 *     page or anon is left, and every frame is free but the cluster pool's.
 *
 * It found that a destroy() while close()'s FIN was on its way never released anything
 * (destroy-during-a-close-still-ends-the-connection.test.ts), and that a reset by the peer right
 * behind its bytes read as an end of stream (a-reset-by-the-peer-is-never-an-end-of-stream.test.ts).
 */
import net from 'node:net';
import { type Kernel, KernelError, PAGE_SIZE, type Proc } from '@loanout/core';
import { mbufInit, mbufStats } from '@loanout/mbuf';
import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import { type RecvMode, SendError, type SendMode, type Socket, sockConnect } from '../src/index.js';
import { resetTcp } from '../src/net_glue.js';
import { expectAtRest, KiB, MiB, pattern, random, Scope, tick, until } from './helpers.js';

const scope = new Scope();
afterEach(() => scope.cleanup());

const NBUF = 2;
const BUF = MiB + 4321;
const PHYS_PAGES = 8192;
/* how long any promise of a run may take to settle once the run is over (the linger is 10 s) */
const SETTLE_MS = 15_000;

type End = 'close' | 'close0' | 'destroy' | 'peerEnd' | 'peerClose' | 'peerReset';
type Cmd =
  | { t: 'send'; buf: number; off: number; len: number; mode: SendMode }
  | { t: 'write'; buf: number; off: number; len: number; seed: number }
  | { t: 'recv'; off: number; len: number; mode: RecvMode }
  | { t: 'peerSend'; len: number }
  | { t: 'peerPause' }
  | { t: 'peerResume' }
  | { t: 'tick' }
  | { t: 'turn' }
  | { t: 'unmapSend'; buf: number }
  | { t: 'unmapRecv' }
  | { t: 'exit' }
  | { t: 'end'; how: End };

const size = fc.oneof(
  fc.integer({ min: 1, max: 64 }),
  fc.integer({ min: 1, max: 96 * KiB }),
  fc.integer({ min: 1, max: BUF }),
);
const span = fc
  .tuple(fc.integer({ min: 0, max: NBUF - 1 }), fc.integer({ min: 0, max: BUF - 1 }), size)
  .map(([buf, off, len]) => ({ buf, off, len: Math.min(len, BUF - off) }));
const inLen = fc.oneof(fc.integer({ min: 1, max: 100 }), fc.integer({ min: 1, max: 160 * KiB }));
const ends = fc.constantFrom<End>('close', 'close', 'close0', 'destroy', 'peerEnd', 'peerClose', 'peerReset');
const cmd: fc.Arbitrary<Cmd> = fc.oneof(
  {
    weight: 6,
    arbitrary: fc
      .tuple(span, fc.constantFrom<SendMode>('copy', 'loan', 'auto'))
      .map(([s, mode]) => ({ t: 'send' as const, ...s, mode })),
  },
  {
    weight: 2,
    arbitrary: fc
      .tuple(span, fc.integer({ min: 1, max: 255 }))
      .map(([s, seed]) => ({ t: 'write' as const, ...s, seed })),
  },
  {
    weight: 4,
    arbitrary: fc
      .tuple(
        fc.oneof(fc.constant(0), fc.integer({ min: 0, max: PAGE_SIZE - 1 })),
        inLen,
        fc.constantFrom<RecvMode>('copy', 'transfer', 'auto'),
      )
      .map(([off, len, mode]) => ({ t: 'recv' as const, off, len, mode })),
  },
  { weight: 4, arbitrary: inLen.map((len) => ({ t: 'peerSend' as const, len })) },
  { weight: 1, arbitrary: fc.constant({ t: 'peerPause' as const }) },
  { weight: 1, arbitrary: fc.constant({ t: 'peerResume' as const }) },
  { weight: 1, arbitrary: fc.constant({ t: 'tick' as const }) },
  { weight: 3, arbitrary: fc.constant({ t: 'turn' as const }) },
  {
    weight: 1,
    arbitrary: fc.integer({ min: 0, max: NBUF - 1 }).map((buf) => ({ t: 'unmapSend' as const, buf })),
  },
  { weight: 1, arbitrary: fc.constant({ t: 'unmapRecv' as const }) },
  { weight: 1, arbitrary: fc.constant({ t: 'exit' as const }) },
  { weight: 3, arbitrary: ends.map((how) => ({ t: 'end' as const, how })) },
);
const setup = fc.record({
  sendHighWater: fc.constantFrom(16 * KiB, 256 * KiB, MiB),
  kvaBudgetBytes: fc.constantFrom(64 * KiB, 16 * MiB),
  autoThreshold: fc.constantFrom(1, 16 * KiB, 1 << 30),
  recvChunkBytes: fc.constantFrom(16 * KiB, 32 * KiB),
  recvChunks: fc.constantFrom(2, 4),
});
type Setup = typeof setup extends fc.Arbitrary<infer T> ? T : never;

const OUR_END: End[] = ['close', 'close0', 'destroy'];
const ABORT: End[] = ['close0', 'destroy'];
const PEER_GONE: End[] = ['peerClose', 'peerReset'];
/* the codes a connection the peer closed or reset fails with (a read: ECONNRESET; a write: EPIPE too) */
const GONE_CODES = ['ECONNRESET', 'EPIPE'];

/* a process of the run, and when it exited (null: alive) */
interface Task {
  proc: Proc;
  exitedAt: number | null;
}

/* a mapping of the run: whose, where, the bytes the model says it holds, and when it was unmapped */
interface Mapping {
  task: Task;
  va: number;
  len: number;
  model: Buffer;
  unmappedAt: number | null;
}

/* how a call ended: resolved with a count, or rejected with a code (atCall: refused, not a SendError) */
type Outcome = { ok: true; n: number } | { ok: false; code: string; n: number; atCall: boolean };

/* a call of the run: when it was made, how and when (at which step) it settled */
interface Call {
  at: number;
  settledAt: number;
  outcome: Outcome | null;
  settled: Promise<void>;
}
/* a send: its buffer and the bytes its range held at the call */
interface SendCall extends Call {
  mem: Mapping;
  bytes: Buffer;
}
/* a recv: its own mapping, and where in it the bytes go */
interface RecvCall extends Call {
  mem: Mapping;
  off: number;
  len: number;
}
interface CloseCall extends Call {
  linger: number;
}

/*
 * the peer: a plain node:net socket, what it received, and how its side ended. On this Node a reset
 * that lands while the peer still has bytes to read is reported as an end (libuv before its fix for
 * libuv/libuv#4992 takes a POLLHUP after a short read for EOF without reading again), so on an end
 * the peer writes a byte back: that write fails at once on a reset connection, and goes through on
 * one our FIN half-closed (we read and drop it) -- the probe tells a reset from an end
 */
interface Peer {
  sock: net.Socket;
  parts: Buffer[];
  sawEnd: boolean;
  /* the probe after the end: none (the peer had ended its side itself, or saw no end), ok, failed */
  probe: 'none' | 'ok' | 'failed';
  error: boolean;
  closed: Promise<void>;
}

/* one run: the socket, the peer, the processes and buffers, every call and every event */
class Run {
  clock = 0;
  task!: Task;
  bufs: Mapping[] = [];
  readonly sends: SendCall[] = [];
  readonly recvs: RecvCall[] = [];
  readonly closes: CloseCall[] = [];
  readonly tasks: Task[] = [];
  /* the peer's stream: what it wrote */
  readonly inbound: Buffer[] = [];
  /* the ends, by kind: the steps they happened at */
  private readonly events = new Map<End, number[]>();

  constructor(
    readonly k: Kernel,
    readonly so: Socket,
    readonly peer: Peer,
  ) {
    this.spawn();
  }

  spawn(): void {
    this.task = { proc: this.k.createProcess(), exitedAt: null };
    this.tasks.push(this.task);
    this.bufs = [];
    for (let b = 0; b < NBUF; b++) this.bufs[b] = this.map(BUF);
  }

  /* map: len fresh bytes of the current process (zeros: the zero page until written) */
  map(len: number): Mapping {
    const va = this.task.proc.mmap(len);
    return { task: this.task, va, len, model: Buffer.alloc(len), unmappedAt: null };
  }

  event(e: End): void {
    const list = this.events.get(e) ?? [];
    list.push(this.clock);
    this.events.set(e, list);
  }

  /* when: the first step in [from, to] at which an event of these kinds happened, or null */
  when(kinds: End[], from = 0, to = Number.POSITIVE_INFINITY): number | null {
    let first: number | null = null;
    for (const e of kinds) {
      for (const at of this.events.get(e) ?? []) {
        if (at >= from && at <= to && (first === null || at < first)) first = at;
      }
    }
    return first;
  }

  /* happened: did an event of these kinds happen in [from, to]? */
  happened(kinds: End[], from = 0, to = Number.POSITIVE_INFINITY): boolean {
    return this.when(kinds, from, to) !== null;
  }

  /* track: a call made now: follow its promise to its outcome and the step it settled at */
  track<C extends Call>(rest: Omit<C, keyof Call>, p: Promise<unknown>, count: (v: never) => number): C {
    const c = { ...rest, at: this.clock, settledAt: -1, outcome: null, settled: Promise.resolve() } as C;
    c.settled = p.then(
      (v) => {
        c.outcome = { ok: true, n: count(v as never) };
        c.settledAt = this.clock;
      },
      (err: unknown) => {
        if (!(err instanceof KernelError)) throw err;
        const atCall = !(err instanceof SendError);
        c.outcome = { ok: false, code: err.code, n: atCall ? 0 : (err as SendError).bytesSent, atCall };
        c.settledAt = this.clock;
      },
    );
    return c;
  }
}

async function connect(k: Kernel, opts: Setup): Promise<{ so: Socket; peer: Peer }> {
  let peer: Peer | null = null;
  const server = net.createServer({ allowHalfOpen: true }, (sock) => {
    const p: Peer = {
      sock,
      parts: [],
      sawEnd: false,
      probe: 'none',
      error: false,
      closed: Promise.resolve(),
    };
    p.closed = new Promise((r) => sock.once('close', () => r()));
    sock.on('data', (d: Buffer) => p.parts.push(d));
    sock.on('end', () => {
      p.sawEnd = true;
      if (sock.writableEnded || sock.destroyed) return;
      sock.write(Buffer.from('?'), (err) => {
        p.probe = err ? 'failed' : 'ok';
        if (!err) sock.end();
      });
    });
    sock.on('error', () => {
      p.error = true;
    });
    peer = p;
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  scope.defer(() => new Promise<void>((r) => server.close(() => r())));
  scope.defer(() => peer?.sock.destroy());
  const { kvaBudgetBytes: _, ...sockOpts } = opts;
  const port = (server.address() as net.AddressInfo).port;
  const so = scope.socket(await sockConnect(k, { port, ...sockOpts }));
  await until(() => peer !== null, 'the peer accepts');
  return { so, peer: peer as unknown as Peer };
}

async function step(r: Run, c: Cmd): Promise<void> {
  r.clock++;
  switch (c.t) {
    case 'send':
      return send(r, r.bufs[c.buf], c.off, c.len, c.mode);
    case 'write':
      return write(r.bufs[c.buf], c.off, c.len, c.seed);
    case 'recv':
      return recv(r, c.off, c.len, c.mode);
    case 'peerSend':
      return peerSend(r, c.len);
    case 'peerPause':
      r.peer.sock.pause();
      return;
    case 'peerResume':
      r.peer.sock.resume();
      return;
    case 'tick':
      return tick(2);
    case 'turn':
      return new Promise((r) => setImmediate(r));
    case 'unmapSend':
      return unmapSend(r, c.buf);
    case 'unmapRecv':
      return unmapRecv(r);
    case 'exit':
      r.task.proc.exit();
      r.task.exitedAt = r.clock;
      r.spawn();
      return;
    case 'end':
      return end(r, c.how);
  }
}

function send(r: Run, mem: Mapping, off: number, len: number, mode: SendMode): void {
  const bytes = Buffer.from(mem.model.subarray(off, off + len));
  const p = r.so.send(mem.task.proc, mem.va + off, len, { mode });
  r.sends.push(r.track<SendCall>({ mem, bytes }, p, (v: { bytes: number }) => v.bytes));
}

async function write(mem: Mapping, off: number, len: number, seed: number): Promise<void> {
  const bytes = pattern(len, seed);
  await mem.task.proc.write(mem.va + off, bytes);
  bytes.copy(mem.model, off);
}

/* recv: into a fresh mapping of its own (which nothing else writes), at `off` in its first page */
function recv(r: Run, off: number, len: number, mode: RecvMode): void {
  const mem = r.map(off + len);
  const p = r.so.recv(mem.task.proc, mem.va + off, len, { mode });
  r.recvs.push(r.track<RecvCall>({ mem, off, len }, p, (n: number) => n));
}

function peerSend(r: Run, len: number): void {
  const s = r.peer.sock;
  if (s.destroyed || s.writableEnded) return;
  const bytes = random(len);
  r.inbound.push(bytes);
  s.write(bytes);
}

function unmapSend(r: Run, b: number): void {
  const mem = r.bufs[b];
  mem.task.proc.munmap(mem.va, mem.len);
  mem.unmappedAt = r.clock;
  r.bufs[b] = r.map(BUF);
}

/* unmapRecv: unmap the buffer of the latest recv still pending, if any */
function unmapRecv(r: Run): void {
  const pending = r.recvs.filter((x) => x.outcome === null);
  const c = pending[pending.length - 1];
  if (c === undefined || c.mem.task.exitedAt !== null || c.mem.unmappedAt !== null) return;
  c.mem.task.proc.munmap(c.mem.va, c.mem.len);
  c.mem.unmappedAt = r.clock;
}

/* end: one of the ways a stream ends, from our side or the peer's */
function end(r: Run, how: End): void {
  /* a destroy() after a close() has settled finds the socket released: it does nothing */
  if (how !== 'destroy' || !r.closes.some((c) => c.outcome !== null)) r.event(how);
  const s = r.peer.sock;
  if (how === 'close' || how === 'close0') closeCall(r, how === 'close' ? 10_000 : 0);
  else if (how === 'destroy') r.so.destroy();
  else if (how === 'peerEnd') s.end();
  else if (how === 'peerClose') s.destroy();
  /* (node:net's own resetAndDestroy never closes a socket whose end() is under way: resetTcp waits) */ else
    resetTcp(s);
}

function closeCall(r: Run, linger: number): void {
  r.closes.push(r.track<CloseCall>({ linger }, r.so.close({ linger }), () => 0));
}

/* bounded: p, or a failure naming `what` if it has not settled within ms */
async function bounded<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: not settled within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([p, late]);
  } finally {
    clearTimeout(timer);
  }
}

/*
 * finish: the peer reads again; a run that did not end from our side ends with a close(); then every
 * call must settle, the peer's end must close, and the socket must be released
 */
async function finish(r: Run): Promise<void> {
  r.clock++;
  if (!r.peer.sock.destroyed) r.peer.sock.resume();
  if (!r.happened(OUR_END)) end(r, 'close');
  const calls = [...r.sends, ...r.recvs, ...r.closes].map((c) => c.settled);
  await bounded(Promise.all(calls), SETTLE_MS, 'every send, recv and close');
  await bounded(r.peer.closed, SETTLE_MS, "the peer's end closes");
  await bounded(
    r.so.close().catch(() => undefined),
    SETTLE_MS,
    'the socket is released',
  );
  r.clock++;
}

/* the codes that events while a call was pending, [c.at, c.settledAt], explain (besides the peer's) */
function causes(r: Run, c: Call, mem: Mapping): string[] {
  const codes: string[] = [];
  const during = (at: number | null) => at !== null && at >= c.at && at <= c.settledAt;
  if (r.happened(['destroy'], c.at, c.settledAt)) codes.push('ECONNABORTED');
  if (r.happened(PEER_GONE, 0, c.settledAt)) codes.push(...GONE_CODES);
  if (during(mem.task.exitedAt)) codes.push('ESRCH');
  if (during(mem.unmappedAt)) codes.push('EFAULT');
  return codes;
}

/* sent: how many of a send's bytes went on the stream */
function sent(s: SendCall): number {
  return s.outcome!.n;
}

/*
 * checkSends: refused at the call once the socket is closing (EPIPE, or the connection's error),
 * and only then or once the peer went away; else resolved whole, or failed with a code an event
 * while it was pending explains (with close with linger, nothing)
 */
function checkSends(r: Run): void {
  for (const s of r.sends) {
    const o = s.outcome!;
    const what = `send #${r.sends.indexOf(s)} (step ${s.at}, settled ${s.settledAt}): ${JSON.stringify(o)}`;
    const goneBefore = r.happened(PEER_GONE, 0, s.at - 1);
    if (r.happened(OUR_END, 0, s.at - 1)) {
      expect(o.ok === false && o.atCall, `${what} is refused at the call`).toBe(true);
      expect(goneBefore ? GONE_CODES : ['EPIPE'], what).toContain(o.ok ? 'ok' : o.code);
    } else if (o.ok) {
      expect(o.n, what).toBe(s.bytes.length);
    } else if (o.atCall) {
      expect(goneBefore, `${what}: refused, though open`).toBe(true);
      expect(GONE_CODES, what).toContain(o.code);
    } else {
      const codes = causes(r, s, s.mem);
      if (r.happened(['close0'], s.at, s.settledAt)) codes.push('EPIPE');
      expect(codes, what).toContain(o.code);
      expect(o.n, what).toBeLessThanOrEqual(s.bytes.length);
    }
  }
}

/*
 * checkRecvs: in call order, each recv consumes the next bytes of the peer's stream (and writes
 * nothing else); 0 only once we closed or the peer ended with all read; after destroy() ECONNABORTED,
 * after close() 0; a failure only with a code an event while it was pending explains
 */
async function checkRecvs(r: Run): Promise<void> {
  const inbound = Buffer.concat(r.inbound);
  let taken = 0;
  for (const c of r.recvs) {
    const o = c.outcome!;
    const what = `recv #${r.recvs.indexOf(c)} (step ${c.at}, settled ${c.settledAt}): ${JSON.stringify(o)}`;
    const gone = r.happened(PEER_GONE, 0, c.settledAt) ? GONE_CODES : [];
    if (r.happened(['destroy'], 0, c.at - 1)) {
      expect(['ECONNABORTED', ...gone], what).toContain(o.ok ? 'ok' : o.code);
    } else if (r.happened(OUR_END, 0, c.at - 1)) {
      /* 0 -- or, while it waits its turn behind a recv made before the close, what ends a wait */
      if (o.ok) expect(o.n, what).toBe(0);
      else expect(causes(r, c, c.mem), what).toContain(o.code);
    } else if (!o.ok) {
      expect(causes(r, c, c.mem), what).toContain(o.code);
    } else if (o.n === 0 && !r.happened(['close', 'close0'], c.at, c.settledAt)) {
      expect(r.happened(['peerEnd', 'peerClose'], 0, c.settledAt), `${what}: an end nobody made`).toBe(true);
      expect(taken, `${what}: an end with bytes unread`).toBe(inbound.length);
    }
    const n = o.ok ? o.n : 0;
    expect(n, what).toBeLessThanOrEqual(c.len);
    await expectHolds(r, c, inbound.subarray(taken, taken + n), what);
    taken += n;
  }
  expect(taken).toBeLessThanOrEqual(inbound.length);
}

/*
 * reused: does mem lie where the buffer of a recv unmapped while it was pending was? That recv may
 * still have been copying (asleep on a fault): it then writes at its addresses, now mem's, as a
 * read(2) does into whatever is mapped at its buffer's addresses when the copy goes on
 */
function reused(r: Run, mem: Mapping): boolean {
  return r.recvs.some(
    (o) =>
      o.mem !== mem &&
      o.mem.task === mem.task &&
      o.mem.unmappedAt !== null &&
      o.mem.va < mem.va + mem.len &&
      mem.va < o.mem.va + o.mem.len,
  );
}

/* expectHolds: a recv's mapping (if it can still be read) holds `bytes` at its offset, zeros elsewhere */
async function expectHolds(r: Run, c: RecvCall, bytes: Buffer, what: string): Promise<void> {
  if (c.mem.task.exitedAt !== null || c.mem.unmappedAt !== null || reused(r, c.mem)) return;
  const want = Buffer.alloc(c.mem.len);
  bytes.copy(want, c.off);
  const got = await c.mem.task.proc.read(c.mem.va, c.mem.len);
  expect(got.equals(want), `${what}: the bytes of the stream, where asked, and nothing else`).toBe(true);
}

/*
 * checkCloses: linger 0, a second close and a close after destroy() wait for the release and resolve,
 * and a first graceful close resolves, unless the peer went away (ECONNRESET, EPIPE) -- never
 * ETIMEDOUT here, where the peer always reads again in time
 */
function checkCloses(r: Run): void {
  for (const c of r.closes) {
    const o = c.outcome!;
    const what = `close #${r.closes.indexOf(c)} (step ${c.at}, linger ${c.linger}, settled ${c.settledAt}): ${JSON.stringify(o)}`;
    if (o.ok) continue;
    expect(c.linger, `${what}: linger 0 only waits for the release`).not.toBe(0);
    /* a close after our own end only waits -- unless the peer went away first: then it says so */
    expect(r.happened(PEER_GONE, 0, c.settledAt) ? GONE_CODES : [], what).toContain(o.code);
  }
}

/*
 * checkPeer: the peer got a prefix of the stream of the bytes at each call; all of it if it saw a
 * clean end; an abort (destroy, linger 0) with no close before it is a reset there, never a clean
 * end; with no abort and the peer staying, all of it and a clean end; and all of it, with the end,
 * whenever a graceful close resolved
 */
function checkPeer(r: Run): void {
  const p = r.peer;
  const stream = Buffer.concat(r.sends.map((s) => s.bytes.subarray(0, sent(s))));
  const got = Buffer.concat(p.parts);
  const clean = p.sawEnd && p.probe === 'ok';
  const reset = p.error || p.probe === 'failed';
  const how = clean ? 'a clean end' : reset ? 'a reset' : p.sawEnd ? 'an end (after its own)' : 'nothing';
  const what = `the peer got ${got.length} of ${stream.length} bytes, then ${how}`;
  expect(got.length, what).toBeLessThanOrEqual(stream.length);
  expect(got.equals(stream.subarray(0, got.length)), `${what}: not a prefix of the stream`).toBe(true);
  if (clean) expect(got.length, `${what}: an end that looks complete`).toBe(stream.length);
  const abort = r.when(ABORT);
  const close = r.when(['close']);
  if (abort !== null && (close === null || close > abort)) {
    expect(clean, `${what}, after an abort`).toBe(false);
    if (!r.happened(['peerEnd', ...PEER_GONE])) expect(reset, `${what}, after an abort`).toBe(true);
  }
  if (abort === null && !r.happened(PEER_GONE)) expect(reset, what).toBe(false);
  const resolved = r.closes.some(
    (c) => c.linger > 0 && c.outcome!.ok && !r.happened([...ABORT, ...PEER_GONE], 0, c.settledAt),
  );
  if (resolved || (abort === null && !r.happened(PEER_GONE))) {
    expect(p.sawEnd, `${what}: a close lost its end`).toBe(true);
    expect(got.length, `${what}: a close lost bytes`).toBe(stream.length);
  }
}

/* expectNothingLeft: every process gone; no anon, loan, wire, pin, cluster or budget page left */
function expectNothingLeft(r: Run): void {
  for (const p of r.k.processes) p.exit();
  const s = r.k.stats();
  expect(s.anons).toBe(0);
  expect(s.freePages + mbufStats(r.k).clusterPoolPages).toBe(PHYS_PAGES);
  expect(r.so.pendingSends).toBe(0);
  expect(r.so.recvQueued).toBe(0);
  expect(r.so.isOpen).toBe(false);
  expectAtRest(r.k);
}

async function run(cmds: Cmd[], opts: Setup): Promise<void> {
  const k = scope.kernel({ physPages: PHYS_PAGES, swapPages: 0 });
  mbufInit(k, { kvaBudgetBytes: opts.kvaBudgetBytes });
  const { so, peer } = await connect(k, opts);
  const r = new Run(k, so, peer);
  for (const c of cmds) {
    await step(r, c);
    k.checkInvariants();
  }
  await finish(r);
  k.checkInvariants();
  checkSends(r);
  await checkRecvs(r);
  checkCloses(r);
  checkPeer(r);
  expectNothingLeft(r);
}

describe('close, destroy, resets, exits and unmaps at random points of a stream', () => {
  it('end every call as documented, deliver a prefix of the stream (all of it on a clean end), and leave nothing', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(cmd, { minLength: 6, maxLength: 24 }), setup, async (cmds, opts) => {
        await run(cmds, opts);
        await scope.cleanup();
      }),
      { numRuns: 30, endOnFailure: true },
    );
  }, 120_000);
});
