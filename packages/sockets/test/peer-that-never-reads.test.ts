/*
 * A peer that never reads: the host's buffers fill, then the socket's send buffer or the loan
 * address-space budget, and sends block -- holding no more than those limits allow. Closing the
 * socket (reset, or a short linger) must release a blocked send with EPIPE and leave nothing behind,
 * and a close whose linger runs out with data still unsent says so (ETIMEDOUT). Whatever such sockets
 * hold, a neighbour whose peer reads is never starved: its loans fall back to copies, and its copies
 * may overdraft the cluster pool by one chunk.
 */
import type { Kernel, Proc } from '@loanout/core';
import { mbufStats } from '@loanout/mbuf';
import { afterEach, describe, expect, it } from 'vitest';
import type { SendMode, SendResult, Socket } from '../src/index.js';
import {
  drainedPair,
  expectAtRest,
  failure,
  KiB,
  MiB,
  PAGE_SIZE,
  pausedPair,
  Scope,
  settled,
  stalled,
  userMemory,
} from './helpers.js';

const scope = new Scope();
afterEach(() => scope.cleanup());

/* a sender that sends the same MiB again and again (at most 64 times) until a send fails */
function sendForever(so: Socket, p: Proc, va: number, mode: SendMode) {
  const results: SendResult[] = [];
  const loop = (async () => {
    for (let i = 0; i < 64; i++) results.push(await so.send(p, va, MiB, { mode }));
  })();
  loop.catch(() => {});
  return { loop, results };
}

/* everything the kernel holds for sends in flight */
function holding(k: Kernel): number {
  const m = mbufStats(k);
  return k.stats().loanedPages + m.kvaPagesInUse + m.clustersInUse;
}

describe('a peer that never reads', () => {
  it('blocks a loan send on the send buffer, holding no more than the high-water mark; a reset releases it (EPIPE)', async () => {
    const k = scope.kernel({}, { kvaBudgetBytes: MiB });
    const { so } = await pausedPair(scope, k, { sendHighWater: 64 * KiB });
    const p = k.createProcess();
    const va = await userMemory(p, MiB);
    const s = sendForever(so, p, va, 'loan');
    await stalled(() => mbufStats(k).loanChains, 'the loan send');
    expect(await settled(s.loop)).toBe(false);
    expect(so.sendQueued).toBeGreaterThan(0);
    expect(so.sendQueued).toBeLessThanOrEqual(64 * KiB);
    expect(k.stats().loanedPages).toBeLessThanOrEqual((64 * KiB) / PAGE_SIZE + 1);
    expect(mbufStats(k).kvaWaiting).toBe(0);

    await so.close({ linger: 0 });
    expect((await failure(s.loop)).code).toBe('EPIPE');
    const dones = await Promise.allSettled(s.results.map((r) => r.done));
    /* what the host took before the peer stopped is done; anything still in flight failed */
    for (const d of dones) if (d.status === 'rejected') expect(d.reason.code).toBe('EPIPE');
    expectAtRest(k);
  });

  it('blocks a loan send on the loan budget (sokva), holding no more than it; a short linger releases it (EPIPE)', async () => {
    const k = scope.kernel({}, { kvaBudgetBytes: 64 * KiB });
    const { so } = await pausedPair(scope, k, { sendHighWater: MiB });
    const p = k.createProcess();
    const va = await userMemory(p, MiB);
    const s = sendForever(so, p, va, 'loan');
    await stalled(() => mbufStats(k).loanChains, 'the loan send');
    expect(await settled(s.loop)).toBe(false);
    /* it waits for its own loans to come back, not in the budget's line, and copies nothing */
    expect(mbufStats(k).kvaWaiting).toBe(0);
    expect(mbufStats(k).kvaPagesInUse).toBeLessThanOrEqual(16);
    expect(k.stats().loanedPages).toBeLessThanOrEqual(16);
    expect(mbufStats(k).copyChains).toBe(0);

    expect((await failure(so.close({ linger: 20 }))).code).toBe('ETIMEDOUT');
    expect((await failure(s.loop)).code).toBe('EPIPE');
    await Promise.allSettled(s.results.map((r) => r.done));
    expectAtRest(k);
  });

  it('blocks a copy send on the send buffer, holding a bounded number of clusters; close releases it', async () => {
    const k = scope.kernel();
    const { so } = await pausedPair(scope, k, { sendHighWater: 128 * KiB });
    const p = k.createProcess();
    const va = await userMemory(p, MiB);
    const s = sendForever(so, p, va, 'copy');
    await stalled(() => mbufStats(k).copyChains, 'the copy send');
    expect(await settled(s.loop)).toBe(false);
    expect(mbufStats(k).clustersInUse).toBeGreaterThan(0);
    expect(mbufStats(k).clustersInUse).toBeLessThanOrEqual((128 * KiB) / 2048);
    expect(k.stats().loanedPages).toBe(0);

    expect((await failure(so.close({ linger: 10 }))).code).toBe('ETIMEDOUT');
    expect((await failure(s.loop)).code).toBe('EPIPE');
    await Promise.allSettled(s.results.map((r) => r.done));
    expectAtRest(k);
  });

  it('a neighbour whose peer reads is not starved when a stuck socket holds the whole loan budget: it copies', async () => {
    const k = scope.kernel({}, { kvaBudgetBytes: 256 * KiB });
    const stuck = await pausedPair(scope, k, { sendHighWater: MiB });
    const other = await drainedPair(scope, k);
    const p = k.createProcess();
    const va = await userMemory(p, MiB);
    const s = sendForever(stuck.so, p, va, 'loan');
    await stalled(() => mbufStats(k).loanChains, 'the stuck send');
    expect(mbufStats(k).kvaPagesInUse).toBe(64);

    /* the neighbour asks for a loan; the budget is the stuck one's, so it is a copy, and it goes */
    const r = await other.so.send(p, va, 128 * KiB, { mode: 'loan' });
    expect(r).toMatchObject({ bytes: 128 * KiB, loanedBytes: 0, copiedBytes: 128 * KiB });
    await r.done;
    expect(mbufStats(k)).toMatchObject({ loanFallbacks: 1, loanFallbackBytes: 128 * KiB });
    expect(other.so.stats().loanFallbackBytes).toBe(128 * KiB);
    await other.so.close();
    expect((await other.got).bytes.equals(await p.read(va, 128 * KiB))).toBe(true);

    /* the stuck one is still stuck, holding no more than the budget */
    expect(await settled(s.loop)).toBe(false);
    expect(mbufStats(k).kvaPagesInUse).toBeLessThanOrEqual(64);
    await stuck.so.close({ linger: 0 });
    expect((await failure(s.loop)).code).toBe('EPIPE');
    await Promise.allSettled(s.results.map((r) => r.done));
    expect(holding(k)).toBe(0);
    expectAtRest(k);
  });

  it('a neighbour whose peer reads is not starved when stuck sockets hold the whole cluster pool: it overdraws', async () => {
    const k = scope.kernel({}, { maxClusterBytes: 256 * KiB });
    const stuck = [await pausedPair(scope, k), await pausedPair(scope, k)];
    const other = await drainedPair(scope, k);
    const p = k.createProcess();
    const va = await userMemory(p, MiB);
    const loops = stuck.map((x) => sendForever(x.so, p, va, 'copy'));
    await stalled(() => mbufStats(k).copyChains, 'the stuck sends');
    expect(mbufStats(k).clustersInUse).toBeGreaterThanOrEqual(128);

    const r = await other.so.send(p, va, 200 * KiB, { mode: 'copy' });
    await r.done;
    expect(r.copiedBytes).toBe(200 * KiB);
    /* one chunk at a time past the pool's limit, each only while nothing of its own was in flight */
    expect(mbufStats(k).overdrafts).toBeGreaterThanOrEqual(4);
    await other.so.close();
    expect((await other.got).bytes.equals(await p.read(va, 200 * KiB))).toBe(true);

    for (const x of stuck) await x.so.close({ linger: 0 });
    for (const l of loops) expect((await failure(l.loop)).code).toBe('EPIPE');
    for (const l of loops) await Promise.allSettled(l.results.map((r) => r.done));
    expect(holding(k)).toBe(0);
    expectAtRest(k);
  });
});
