/*
 * Waits end. A send sleeping for room in the send buffer (or for its own loans to come back), and a
 * receive sleeping for data, end within moments of their process exiting (ESRCH) or their range
 * being unmapped or made inaccessible (EFAULT) -- not when the peer next acts -- with bytesSent right
 * and nothing left behind; destroy() fails them with ECONNABORTED. The socket watches a sleeping
 * call's process (Proc.watch), so no timer is involved: these tests check that the call has settled
 * after one turn of the event loop.
 */
import { Prot } from '@loanout/core';
import { mbufStats } from '@loanout/mbuf';
import { afterEach, describe, expect, it } from 'vitest';
import { SendError, type SendMode } from '../src/index.js';
import {
  drain,
  expectAtRest,
  failure,
  KiB,
  MiB,
  PAGE_SIZE,
  pair,
  pattern,
  pausedPair,
  Scope,
  settled,
  stalled,
  userMemory,
} from './helpers.js';

const scope = new Scope();
afterEach(() => scope.cleanup());

/* a send of `len` bytes to a peer that does not read, asleep once the host is full */
async function sleepingSend(mode: SendMode, kvaBudgetBytes?: number) {
  const k = scope.kernel({ physPages: 8192 }, kvaBudgetBytes === undefined ? undefined : { kvaBudgetBytes });
  const { so, remote, got } = await pausedPair(scope, k, { sendHighWater: 64 * KiB }, drain);
  const p = k.createProcess();
  const len = 16 * MiB;
  const data = pattern(len, 3);
  const va = await userMemory(p, len, data);
  const sending = so.send(p, va, len, { mode });
  sending.catch(() => {});
  await stalled(() => so.stats().bytesSent, 'the send');
  expect(await settled(sending)).toBe(false);
  return { k, so, remote, got, p, va, len, data, sending };
}

describe('a sleeping send ends', () => {
  for (const mode of ['loan', 'copy'] as const) {
    it(`${mode}: when its process exits (ESRCH), with bytesSent what the peer gets`, async () => {
      const s = await sleepingSend(mode);
      const sent = s.so.stats().bytesSent;
      s.p.exit();
      expect(await settled(s.sending)).toBe(true);
      const err = (await failure(s.sending)) as SendError;
      expect(err).toBeInstanceOf(SendError);
      expect(err.code).toBe('ESRCH');
      expect(err.bytesSent).toBe(sent);
      s.remote.resume();
      await err.done;
      await s.so.close();
      expect((await s.got).bytes.equals(s.data.subarray(0, sent))).toBe(true);
      expectAtRest(s.k);
    });

    it(`${mode}: when its range is unmapped (EFAULT); the socket goes on`, async () => {
      const s = await sleepingSend(mode);
      const sent = s.so.stats().bytesSent;
      s.p.munmap(s.va, s.len);
      expect(await settled(s.sending)).toBe(true);
      const err = (await failure(s.sending)) as SendError;
      expect(err.code).toBe('EFAULT');
      expect(err.bytesSent).toBe(sent);
      expect(s.so.isOpen).toBe(true);
      s.remote.resume();
      await err.done;
      await s.so.close();
      expect((await s.got).bytes.length).toBe(sent);
      s.p.exit();
      expectAtRest(s.k);
    });
  }

  it('loan: waiting for its own loans to come back (a one-page budget), when its process exits', async () => {
    const s = await sleepingSend('loan', 64 * KiB);
    s.p.exit();
    expect(await settled(s.sending)).toBe(true);
    expect((await failure(s.sending)).code).toBe('ESRCH');
    await s.so.close({ linger: 0 });
    expectAtRest(s.k);
  });

  it('a send queued behind another ends too, with bytesSent 0, and the first goes on', async () => {
    const s = await sleepingSend('copy');
    const q = s.k.createProcess();
    const vq = await userMemory(q, PAGE_SIZE);
    const queued = s.so.send(q, vq, PAGE_SIZE, { mode: 'loan' });
    queued.catch(() => {});
    q.exit();
    expect(await settled(queued)).toBe(true);
    const err = (await failure(queued)) as SendError;
    expect(err.code).toBe('ESRCH');
    expect(err.bytesSent).toBe(0);
    expect(await settled(s.sending)).toBe(false);
    s.remote.resume();
    await (await s.sending).done;
    await s.so.close();
    expect((await s.got).bytes.equals(s.data)).toBe(true);
    s.p.exit();
    expectAtRest(s.k);
  });

  it('destroy() fails it with ECONNABORTED; later sends get EPIPE', async () => {
    const s = await sleepingSend('loan');
    s.so.destroy();
    expect(await settled(s.sending)).toBe(true);
    expect((await failure(s.sending)).code).toBe('ECONNABORTED');
    expect((await failure(s.so.send(s.p, s.va, 10))).code).toBe('EPIPE');
    await s.so.close();
    s.p.exit();
    expectAtRest(s.k);
  });
});

describe('a sleeping receive ends', () => {
  async function sleepingRecv() {
    const k = scope.kernel();
    const { so } = await pair(scope, k);
    const p = k.createProcess();
    const va = p.mmap(PAGE_SIZE);
    const receiving = so.recv(p, va, 100);
    receiving.catch(() => {});
    expect(await settled(receiving)).toBe(false);
    return { k, so, p, va, receiving };
  }

  it('when its process exits (ESRCH)', async () => {
    const r = await sleepingRecv();
    r.p.exit();
    expect(await settled(r.receiving)).toBe(true);
    expect((await failure(r.receiving)).code).toBe('ESRCH');
    await r.so.close({ linger: 0 });
    expectAtRest(r.k);
  });

  it('when its buffer is unmapped or made read-only (EFAULT)', async () => {
    const r = await sleepingRecv();
    r.p.mprotect(r.va, PAGE_SIZE, Prot.READ);
    expect(await settled(r.receiving)).toBe(true);
    expect((await failure(r.receiving)).code).toBe('EFAULT');
    const again = r.so.recv(r.p, r.p.mmap(PAGE_SIZE), 100);
    again.catch(() => {});
    r.p.munmap(r.va, PAGE_SIZE);
    expect(await settled(again)).toBe(false);
    r.p.exit();
    expect((await failure(again)).code).toBe('ESRCH');
    await r.so.close({ linger: 0 });
    expectAtRest(r.k);
  });

  it('when the socket is destroyed (ECONNABORTED), and nothing is left', async () => {
    const r = await sleepingRecv();
    r.so.destroy();
    expect(await settled(r.receiving)).toBe(true);
    expect((await failure(r.receiving)).code).toBe('ECONNABORTED');
    await r.so.close();
    r.p.exit();
    expect(mbufStats(r.k).kvaPagesInUse).toBe(0);
    expectAtRest(r.k);
  });
});
