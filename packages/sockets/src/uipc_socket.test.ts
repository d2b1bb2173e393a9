import { Prot } from '@loanout/core';
import { mbufStats } from '@loanout/mbuf';
import { afterEach, describe, expect, it } from 'vitest';
import {
  drain,
  drainedPair,
  expectAtRest,
  expectError,
  failure,
  KiB,
  MiB,
  PAGE_SIZE,
  pair,
  pattern,
  pausedPair,
  Scope,
  settled,
  tick,
  until,
  userMemory,
} from '../test/helpers.js';

const scope = new Scope();
afterEach(() => scope.cleanup());

describe('Socket.send (sosend)', () => {
  it('copy: the peer gets exactly the bytes, from clusters that are back once done', async () => {
    const k = scope.kernel();
    const { so, got } = await drainedPair(scope, k);
    const p = k.createProcess();
    const data = pattern(100 * KiB, 3);
    const va = await userMemory(p, 104 * KiB, Buffer.concat([Buffer.alloc(123), data]));
    const r = await so.send(p, va + 123, data.length, { mode: 'copy' });
    expect(r).toMatchObject({ bytes: data.length, loanedBytes: 0, copiedBytes: data.length });
    await r.done;
    expect(mbufStats(k).clustersInUse).toBe(0);
    expect(k.stats().loanedPages).toBe(0);
    await so.close();
    expect((await got).bytes.equals(data)).toBe(true);
    expectAtRest(k);
  });

  it('loan: any offset and length; the pages under it stay loaned until done, then the loans end', async () => {
    const k = scope.kernel({ physPages: 8192 });
    const { so, remote, got } = await pausedPair(scope, k, { sendHighWater: 16 * MiB }, drain);
    const p = k.createProcess();
    const region = pattern(8 * MiB, 5);
    const va = await userMemory(p, region.length, region);
    const off = 100;
    const len = 8 * MiB - 200;
    const r = await so.send(p, va + off, len, { mode: 'loan' });
    expect(r).toMatchObject({ bytes: len, loanedBytes: len, copiedBytes: 0 });
    /* the peer does not read, so 8 MiB cannot all be in the host yet: every page is still on loan */
    expect(await settled(r.done)).toBe(false);
    expect(k.stats().loanedPages).toBe((8 * MiB) / PAGE_SIZE);
    expect(mbufStats(k).kvaPagesInUse).toBe((8 * MiB) / PAGE_SIZE);
    remote.resume();
    await r.done;
    expect(k.stats().loanedPages).toBe(0);
    expect(mbufStats(k).kvaPagesInUse).toBe(0);
    await so.close();
    expect((await got).bytes.equals(region.subarray(off, off + len))).toBe(true);
    expectAtRest(k);
  });

  it('a chunk the host takes whole as it is written is done at once: its loans end, and a send behind it need not wait', async () => {
    const k = scope.kernel();
    /* a send buffer of one 8 KiB chunk: until the first chunk is done, a second one has no room */
    const { so, got } = await drainedPair(scope, k, { sendHighWater: 8 * KiB });
    const p = k.createProcess();
    const data = pattern(16 * KiB, 4);
    const va = await userMemory(p, data.length, data);
    /* an idle loopback connection takes 8 KiB into the host socket at once (it has room for far more) */
    const r1 = so.send(p, va, 8 * KiB, { mode: 'loan' });
    expect(so.sendQueued).toBe(0);
    expect(k.stats().loanedPages).toBe(0);
    expect(mbufStats(k).kvaPagesInUse).toBe(0);
    const r2 = so.send(p, va + 8 * KiB, 8 * KiB, { mode: 'loan' });
    /* not pinned to wait for room: it went out as well, before send() returned */
    expect(so.pendingSends).toBe(0);
    expect(so.stats().pinnedPages).toBe(0);
    expect(so.sendQueued).toBe(0);
    expect(await settled((await r1).done)).toBe(true);
    expect(await settled((await r2).done)).toBe(true);
    expect(so.stats()).toMatchObject({ bytesSent: data.length, loanedBytes: data.length });
    await so.close();
    expect((await got).bytes.equals(data)).toBe(true);
    expectAtRest(k);
  });

  it('sends on one socket go out whole and in call order, whatever their modes', async () => {
    const k = scope.kernel();
    const { so, got } = await drainedPair(scope, k);
    const p = k.createProcess();
    const a = pattern(300 * KiB, 1);
    const b = pattern(5000, 2);
    const c = pattern(200 * KiB + 7, 3);
    const va = await userMemory(p, a.length, a);
    const vb = await userMemory(p, b.length, b);
    const vc = await userMemory(p, c.length, c);
    const rs = await Promise.all([
      so.send(p, va, a.length, { mode: 'loan' }),
      so.send(p, vb, b.length, { mode: 'copy' }),
      so.send(p, vc, c.length, { mode: 'auto' }),
    ]);
    await Promise.all(rs.map((r) => r.done));
    await so.close();
    expect((await got).bytes.equals(Buffer.concat([a, b, c]))).toBe(true);
    expectAtRest(k);
  });

  it('a send larger than the send buffer and the loan budget goes in chunks within both', async () => {
    const k = scope.kernel({}, { kvaBudgetBytes: 64 * KiB });
    const { so, got } = await drainedPair(scope, k, { sendHighWater: 48 * KiB });
    const p = k.createProcess();
    const data = pattern(2 * MiB, 9);
    const va = await userMemory(p, data.length, data);
    let maxQueued = 0;
    let maxKva = 0;
    const sample = setInterval(() => {
      maxQueued = Math.max(maxQueued, so.sendQueued);
      maxKva = Math.max(maxKva, mbufStats(k).kvaPagesInUse);
    }, 1);
    try {
      const r = await so.send(p, va + 1, data.length - 1, { mode: 'loan' });
      expect(r.loanedBytes).toBe(data.length - 1);
      await r.done;
    } finally {
      clearInterval(sample);
    }
    expect(maxQueued).toBeLessThanOrEqual(48 * KiB);
    expect(maxKva).toBeLessThanOrEqual(16);
    await so.close();
    expect((await got).bytes.equals(data.subarray(1))).toBe(true);
    expectAtRest(k);
  });

  it('sends through a loan budget of one page, in chunks that never span more pages than that', async () => {
    const k = scope.kernel({}, { kvaBudgetBytes: PAGE_SIZE });
    const { so, got } = await drainedPair(scope, k);
    const p = k.createProcess();
    const data = pattern(5 * PAGE_SIZE, 13);
    const va = await userMemory(p, data.length, data);
    const m0 = mbufStats(k);
    const c = await so.send(p, va + 10, 10_000, { mode: 'copy' });
    const l = await so.send(p, va + 1000, 3 * PAGE_SIZE, { mode: 'loan' });
    expect(c.copiedBytes).toBe(10_000);
    expect(l.loanedBytes).toBe(3 * PAGE_SIZE);
    await Promise.all([c.done, l.done]);
    /* 3 pages from mid-page: 4 one-page loans */
    expect(mbufStats(k).loanChains - m0.loanChains).toBe(4);
    await so.close();
    expect(
      (await got).bytes.equals(
        Buffer.concat([data.subarray(10, 10_010), data.subarray(1000, 1000 + 3 * PAGE_SIZE)]),
      ),
    ).toBe(true);
    expectAtRest(k);
  });

  it('auto copies below autoThreshold and loans from it up, and says which it did', async () => {
    const k = scope.kernel();
    const { so, got } = await drainedPair(scope, k, { autoThreshold: 8192 });
    const p = k.createProcess();
    const data = pattern(64 * KiB, 4);
    const va = await userMemory(p, data.length, data);
    const m0 = mbufStats(k);
    const small = await so.send(p, va, 8191);
    expect(small).toMatchObject({ bytes: 8191, loanedBytes: 0, copiedBytes: 8191 });
    const big = await so.send(p, va + 8191, 8192, { mode: 'auto' });
    expect(big).toMatchObject({ bytes: 8192, loanedBytes: 8192, copiedBytes: 0 });
    await Promise.all([small.done, big.done]);
    const m1 = mbufStats(k);
    expect(m1.copyChains - m0.copyChains).toBe(1);
    expect(m1.loanChains - m0.loanChains).toBe(1);
    expect(m1.copiedBytes - m0.copiedBytes).toBe(8191);
    expect(m1.loanedBytes - m0.loanedBytes).toBe(8192);
    await so.close();
    expect((await got).bytes.equals(data.subarray(0, 8191 + 8192))).toBe(true);
    expectAtRest(k);
  });

  it('auto decides chunk by chunk: a long send loans its full chunks and copies a short tail', async () => {
    const k = scope.kernel();
    const { so, got } = await drainedPair(scope, k, { sendHighWater: 64 * KiB, autoThreshold: 40 * KiB });
    const p = k.createProcess();
    const data = pattern(138 * KiB, 6);
    const va = await userMemory(p, data.length, data);
    const r = await so.send(p, va, data.length, { mode: 'auto' });
    expect(r).toMatchObject({ bytes: data.length, loanedBytes: 128 * KiB, copiedBytes: 10 * KiB });
    await r.done;
    await so.close();
    expect((await got).bytes.equals(data)).toBe(true);
    expectAtRest(k);
  });

  it('refuses bad arguments with EINVAL and sends nothing', async () => {
    const k = scope.kernel();
    const { so, got } = await drainedPair(scope, k);
    const p = k.createProcess();
    const va = await userMemory(p, 2 * PAGE_SIZE);
    await expectError(so.send(p, -1, 10), 'EINVAL');
    await expectError(so.send(p, 1.5, 10), 'EINVAL');
    await expectError(so.send(p, Number.NaN, 10), 'EINVAL');
    await expectError(so.send(p, va, 0), 'EINVAL');
    await expectError(so.send(p, va, -5), 'EINVAL');
    await expectError(so.send(p, va, 2.5), 'EINVAL');
    await expectError(so.send(p, va, 2 ** 60), 'EINVAL');
    await expectError(so.send(p, va, 10, { mode: 'zerocopy' as never }), 'EINVAL');
    /* null is a value, not "left out": refused, never the default */
    await expectError(so.send(p, va, 10, { mode: null } as never), 'EINVAL');
    await expectError(so.send({} as never, va, 10), 'EINVAL');
    await expectError(so.send(null as never, va, 10), 'EINVAL');
    expect(so.isOpen).toBe(true);
    expect(so.sendQueued).toBe(0);
    await so.close();
    expect((await got).bytes.length).toBe(0);
    expectAtRest(k);
  });

  it('refuses options that are not an object (null, a string, a number) with EINVAL and sends nothing', async () => {
    const k = scope.kernel();
    const { so, got } = await drainedPair(scope, k);
    const p = k.createProcess();
    const va = await userMemory(p, PAGE_SIZE);
    for (const bad of [null, 'loan', 42]) {
      const err = await expectError(so.send(p, va, 10, bad as never), 'EINVAL');
      expect(err.message).toMatch(/^sosend: options must be an object/);
    }
    expect(so.isOpen).toBe(true);
    expect(mbufStats(k)).toMatchObject({ loanChains: 0, copyChains: 0 });
    await so.close();
    expect((await got).bytes.length).toBe(0);
    expectAtRest(k);
  });

  it('refuses a process of another kernel with EINVAL, before touching either kernel', async () => {
    const k = scope.kernel();
    const other = scope.kernel();
    const { so, got } = await drainedPair(scope, k);
    const p = other.createProcess();
    const va = await userMemory(p, PAGE_SIZE);
    for (const mode of ['copy', 'loan', 'auto'] as const) {
      const err = await expectError(so.send(p, va, 10, { mode }), 'EINVAL');
      expect(err.message).toMatch(/^sosend: .*another kernel/);
    }
    expect(mbufStats(k)).toMatchObject({ loanChains: 0, copyChains: 0 });
    expect(mbufStats(other)).toMatchObject({ loanChains: 0, copyChains: 0 });
    expect(so.isOpen).toBe(true);
    await so.close();
    expect((await got).bytes.length).toBe(0);
    p.exit();
    expectAtRest(k);
    expectAtRest(other);
  });

  it('refuses unmapped or unreadable memory with EFAULT, for every mode, and sends nothing', async () => {
    const k = scope.kernel();
    const { so, got } = await drainedPair(scope, k);
    const p = k.createProcess();
    const va = await userMemory(p, 4 * PAGE_SIZE);
    const noread = p.mmap(PAGE_SIZE, { prot: Prot.NONE });
    const unmapped = va + 64 * PAGE_SIZE;
    for (const mode of ['copy', 'loan', 'auto'] as const) {
      await expectError(so.send(p, unmapped, 100, { mode }), 'EFAULT');
      await expectError(so.send(p, noread, 100, { mode }), 'EFAULT');
      /* starts mapped, runs off the end of the mapping */
      await expectError(so.send(p, va + 3 * PAGE_SIZE, 2 * PAGE_SIZE, { mode }), 'EFAULT');
    }
    expect(k.stats().loanedPages).toBe(0);
    expect(so.isOpen).toBe(true);
    await so.close();
    expect((await got).bytes.length).toBe(0);
    expectAtRest(k);
  });

  it('refuses a process that has exited with ESRCH', async () => {
    const k = scope.kernel();
    const { so } = await pair(scope, k);
    const p = k.createProcess();
    const va = await userMemory(p, PAGE_SIZE);
    p.exit();
    await expectError(so.send(p, va, 10, { mode: 'loan' }), 'ESRCH');
    await so.close();
    expectAtRest(k);
  });

  it('fails with EPIPE after close or destroy', async () => {
    const k = scope.kernel();
    const p = k.createProcess();
    const va = await userMemory(p, PAGE_SIZE);
    const a = await pair(scope, k);
    await a.so.close();
    expect(a.so.isOpen).toBe(false);
    await expectError(a.so.send(p, va, 10, { mode: 'copy' }), 'EPIPE');
    await expectError(a.so.send(p, va, 10, { mode: 'loan' }), 'EPIPE');
    const b = await pair(scope, k);
    b.so.destroy();
    await expectError(b.so.send(p, va, 10), 'EPIPE');
    await until(() => b.remote.destroyed || b.remote.readableEnded, 'the peer sees the close');
    expectAtRest(k);
  });
});

describe('Socket.recv (soreceive)', () => {
  it('waits for data, then returns what has arrived (a partial count), into user memory', async () => {
    const k = scope.kernel();
    const { so, remote } = await pair(scope, k);
    const p = k.createProcess();
    const va = p.mmap(MiB);
    const first = so.recv(p, va, MiB);
    expect(await settled(first)).toBe(false);
    remote.write('0123456789');
    const n = await first;
    expect(n).toBeGreaterThanOrEqual(1);
    expect(n).toBeLessThanOrEqual(10);
    let total = n;
    while (total < 10) total += await so.recv(p, va + total, MiB);
    expect(total).toBe(10);
    expect((await p.read(va, 10)).toString()).toBe('0123456789');
    await so.close();
    expectAtRest(k);
  });

  it('moves queued bytes before it returns its promise when no other recv holds the socket; one behind waits its turn', async () => {
    const k = scope.kernel();
    const { so, remote } = await pair(scope, k);
    const p = k.createProcess();
    /* a page already in memory and writable: the copy takes no fault that sleeps */
    const va = await userMemory(p, PAGE_SIZE, Buffer.alloc(PAGE_SIZE, 1));
    remote.write('hello');
    await until(() => so.recvQueued === 5, 'the bytes are queued');
    const first = so.recv(p, va, 100);
    expect(so.recvQueued).toBe(0);
    expect(so.stats().receivedByCopy).toBe(5);
    expect(await first).toBe(5);
    expect((await p.read(va, 5)).toString()).toBe('hello');
    /* a recv sleeping for data holds the socket: one called behind it gets the bytes after it */
    const sleeping = so.recv(p, va, 3);
    const behind = so.recv(p, va + 3, 100);
    remote.write('world');
    const n = await sleeping;
    expect(n).toBeGreaterThanOrEqual(1);
    const m = await behind;
    const parts = [await p.read(va, n), await p.read(va + 3, m)];
    for (let got = n + m; got < 5; ) {
      const more = await so.recv(p, va + 8, 100);
      parts.push(await p.read(va + 8, more));
      got += more;
    }
    expect(Buffer.concat(parts).toString()).toBe('world');
    await so.close();
    expectAtRest(k);
  });

  it('never returns more than asked; small reads take the stream in order; 0 at the end, and again', async () => {
    const k = scope.kernel();
    const { so, remote } = await pair(scope, k);
    const p = k.createProcess();
    const va = p.mmap(PAGE_SIZE);
    const data = pattern(10_000, 8);
    remote.end(data);
    const parts: Buffer[] = [];
    for (let i = 0; i < 20_000; i++) {
      const n = await so.recv(p, va + 5, 7);
      expect(n).toBeLessThanOrEqual(7);
      if (n === 0) break;
      parts.push(await p.read(va + 5, n));
    }
    expect(Buffer.concat(parts).equals(data)).toBe(true);
    expect(await so.recv(p, va, 100)).toBe(0);
    expect(await so.recv(p, va, 100)).toBe(0);
    await so.close();
    expectAtRest(k);
  });

  it('a slow reader with a tiny receive area still gets every byte, in order (reading pauses and resumes)', async () => {
    const k = scope.kernel();
    const { so, remote } = await pair(scope, k, () => {}, { recvChunkBytes: PAGE_SIZE, recvChunks: 2 });
    const p = k.createProcess();
    const va = p.mmap(64 * KiB);
    const data = pattern(2 * MiB + 333, 12);
    remote.end(data);
    await tick(20);
    const parts: Buffer[] = [];
    for (let i = 0; i < 100_000; i++) {
      if (i % 50 === 0) await tick(1);
      const n = await so.recv(p, va, 64 * KiB);
      if (n === 0) break;
      parts.push(await p.read(va, n));
    }
    expect(Buffer.concat(parts).equals(data)).toBe(true);
    await so.close();
    expectAtRest(k);
  });

  it('refuses read-only or unmapped memory with EFAULT and bad arguments with EINVAL, consuming nothing', async () => {
    const k = scope.kernel();
    const { so, remote } = await pair(scope, k);
    const p = k.createProcess();
    const ro = p.mmap(PAGE_SIZE, { prot: Prot.READ });
    const va = p.mmap(PAGE_SIZE);
    remote.write('abc');
    await expectError(so.recv(p, ro, 10), 'EFAULT');
    await expectError(so.recv(p, va + 64 * PAGE_SIZE, 10), 'EFAULT');
    await expectError(so.recv(p, va + PAGE_SIZE - 1, 2), 'EFAULT');
    await expectError(so.recv(p, -4096, 10), 'EINVAL');
    await expectError(so.recv(p, va, 0), 'EINVAL');
    await expectError(so.recv(p, va, 1.25), 'EINVAL');
    await expectError(so.recv({} as never, va, 10), 'EINVAL');
    let got = '';
    while (got.length < 3) {
      const n = await so.recv(p, va, 10);
      got += (await p.read(va, n)).toString();
    }
    expect(got).toBe('abc');
    await so.close();
    expectAtRest(k);
  });

  it('refuses a process of another kernel with EINVAL, consuming nothing and writing nothing there', async () => {
    const k = scope.kernel();
    const other = scope.kernel();
    const { so, remote } = await pair(scope, k);
    const stranger = other.createProcess();
    const sva = await userMemory(stranger, PAGE_SIZE, Buffer.alloc(PAGE_SIZE, 0x2e));
    remote.write('abc');
    await tick(20);
    const err = await expectError(so.recv(stranger, sva, 10), 'EINVAL');
    expect(err.message).toMatch(/^soreceive: .*another kernel/);
    expect((await stranger.read(sva, 3)).toString()).toBe('...');
    /* the bytes are still there for a process of the socket's own kernel */
    const p = k.createProcess();
    const va = p.mmap(PAGE_SIZE);
    let got = '';
    while (got.length < 3) got += (await p.read(va, await so.recv(p, va, 10))).toString();
    expect(got).toBe('abc');
    await so.close();
    stranger.exit();
    expectAtRest(k);
    expectAtRest(other);
  });

  it('watches a process once however many times its recvs sleep, and stops when it exits or the socket goes', async () => {
    const k = scope.kernel();
    const { so, remote } = await pair(scope, k);
    const watchers = (p: object) => (p as { watchers: Set<unknown> }).watchers.size;
    const p = k.createProcess();
    const q = k.createProcess();
    const va = p.mmap(PAGE_SIZE);
    const vq = q.mmap(PAGE_SIZE);
    for (let i = 0; i < 3; i++) {
      const r = so.recv(p, va, 1);
      expect(await settled(r)).toBe(false);
      remote.write('x');
      expect(await r).toBe(1);
    }
    /* still one watch, kept for the next sleep */
    expect(watchers(p)).toBe(1);
    const r = so.recv(q, vq, 1);
    expect(await settled(r)).toBe(false);
    expect(watchers(q)).toBe(1);
    q.exit();
    expect((await failure(r)).code).toBe('ESRCH');
    /* the socket let go of the process that exited, and of the other when it closed */
    expect((so as unknown as { watched: Map<object, unknown> }).watched.has(q)).toBe(false);
    await so.close({ linger: 0 });
    expect(watchers(p)).toBe(0);
    expectAtRest(k);
  });

  it('returns 0 once the socket is closed, also to a reader already waiting', async () => {
    const k = scope.kernel();
    const { so } = await pair(scope, k);
    const p = k.createProcess();
    const va = p.mmap(PAGE_SIZE);
    const waiting = so.recv(p, va, 10);
    expect(await settled(waiting)).toBe(false);
    await so.close({ linger: 0 });
    expect(await waiting).toBe(0);
    expect(await so.recv(p, va, 10)).toBe(0);
    expectAtRest(k);
  });

  it('a reset by the peer is an error to a waiting reader (ECONNRESET), not an end of stream', async () => {
    const k = scope.kernel();
    const { so, remote } = await pair(scope, k);
    const p = k.createProcess();
    const va = p.mmap(PAGE_SIZE);
    const waiting = so.recv(p, va, 10);
    expect(await settled(waiting)).toBe(false);
    remote.resetAndDestroy();
    await expectError(waiting, 'ECONNRESET');
    await expectError(so.recv(p, va, 10), 'ECONNRESET');
    expect(so.isOpen).toBe(false);
    await expectError(so.close(), 'ECONNRESET');
    expectAtRest(k);
  });
});

describe('Socket.close (soclose) and destroy', () => {
  it('close sends what is queued first, then releases everything; closing twice is fine', async () => {
    const k = scope.kernel();
    const { so, got } = await drainedPair(scope, k);
    const p = k.createProcess();
    const data = pattern(3 * MiB, 2);
    const va = await userMemory(p, data.length, data);
    const r = await so.send(p, va, data.length, { mode: 'loan' });
    const closing = so.close();
    expect(so.isOpen).toBe(false);
    await r.done;
    await closing;
    await so.close();
    const d = await got;
    expect(d.bytes.equals(data)).toBe(true);
    expect(d.error).toBeNull();
    expectAtRest(k);
  });

  it('close({ linger: 0 }) resets at once: sends in flight reject with EPIPE, the stream is cut short', async () => {
    const k = scope.kernel({ physPages: 8192 });
    const { so, remote, got } = await pausedPair(scope, k, { sendHighWater: 16 * MiB }, drain);
    const p = k.createProcess();
    const va = await userMemory(p, 8 * MiB);
    const r = await so.send(p, va, 8 * MiB, { mode: 'loan' });
    expect(k.stats().loanedPages).toBeGreaterThan(0);
    await so.close({ linger: 0 });
    expect((await failure(r.done)).code).toBe('EPIPE');
    expectAtRest(k);
    remote.resume();
    const d = await got;
    /* the reset cut the stream short (how the peer hears of it -- an error or an early end -- is the OS's) */
    expect(d.bytes.length).toBeLessThan(8 * MiB);
  });

  it('close with a linger gives up on a peer that does not read once the linger is over, and says so', async () => {
    const k = scope.kernel({ physPages: 8192 });
    const { so } = await pausedPair(scope, k, { sendHighWater: 16 * MiB });
    const p = k.createProcess();
    const va = await userMemory(p, 8 * MiB);
    const r = await so.send(p, va, 8 * MiB, { mode: 'copy' });
    expect(mbufStats(k).clustersInUse).toBeGreaterThan(0);
    /* the host never took it all: data was lost, and close must not call that a success */
    await expectError(so.close({ linger: 30 }), 'ETIMEDOUT');
    expect((await failure(r.done)).code).toBe('EPIPE');
    expectAtRest(k);
  });

  it('refuses a bad linger with EINVAL (and stays open)', async () => {
    const k = scope.kernel();
    const { so } = await pair(scope, k);
    await expectError(so.close({ linger: -1 }), 'EINVAL');
    await expectError(so.close({ linger: Number.NaN }), 'EINVAL');
    await expectError(so.close({ linger: Number.POSITIVE_INFINITY }), 'EINVAL');
    await expectError(so.close({ linger: null } as never), 'EINVAL');
    expect(so.isOpen).toBe(true);
    await so.close();
    expectAtRest(k);
  });

  it('refuses a linger longer than a timer can wait (over 2^31 - 1 ms) with EINVAL, and stays open', async () => {
    const k = scope.kernel();
    const { so } = await pair(scope, k);
    for (const linger of [2 ** 31, 2 ** 40, Number.MAX_SAFE_INTEGER]) {
      const err = await expectError(so.close({ linger }), 'EINVAL');
      expect(err.message).toMatch(/^soclose: bad linger/);
    }
    expect(so.isOpen).toBe(true);
    await so.close({ linger: 2 ** 31 - 1 });
    expect(so.isOpen).toBe(false);
    expectAtRest(k);
  });

  it('refuses close options that are not an object (null, a number) with EINVAL, and stays open', async () => {
    const k = scope.kernel();
    const { so } = await pair(scope, k);
    await expectError(so.close(null as never), 'EINVAL');
    await expectError(so.close(0 as never), 'EINVAL');
    expect(so.isOpen).toBe(true);
    await so.close();
    expectAtRest(k);
  });

  it('destroy closes at once with a reset the peer sees; close afterwards waits for the release', async () => {
    const k = scope.kernel();
    const { so, remote } = await pair(scope, k);
    const ended = drain(remote);
    expect(so.remotePort).toBe(remote.localPort);
    expect(so.localPort).toBe(remote.remotePort);
    expect(so.remoteAddress).toBe('127.0.0.1');
    so.destroy();
    so.destroy();
    expect(so.isOpen).toBe(false);
    await so.close();
    /* an abort, not an end of stream: a peer must not take a cut-short stream for a whole one */
    expect((await ended).error?.code).toBe('ECONNRESET');
    expectAtRest(k);
  });
});
