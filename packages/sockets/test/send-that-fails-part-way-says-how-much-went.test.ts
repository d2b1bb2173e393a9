/*
 * A send that fails part-way: while it waits for room (its peer does not read), its memory is
 * unmapped or its process exits. The chunks it handed to the host before that are on the stream --
 * TCP cannot take them back -- so, like NetBSD's sosend returning an error after partial data, the
 * send fails with the error and says how many bytes went (SendError.bytesSent): exactly what the
 * peer receives. Every loan ends once those bytes are in the host (SendError.done), and the socket
 * stays open: the next send follows them on the stream.
 */
import type { Kernel } from '@loanout/core';
import { mbufStats } from '@loanout/mbuf';
import { afterEach, describe, expect, it } from 'vitest';
import { SendError, type SendMode } from '../src/index.js';
import {
  drain,
  expectAtRest,
  failure,
  KiB,
  MiB,
  pattern,
  pausedPair,
  Scope,
  settled,
  stalled,
  userMemory,
} from './helpers.js';

const scope = new Scope();
afterEach(() => scope.cleanup());

const TOTAL = 16 * MiB;

/* handed: bytes the kernel has made into mbuf chains so far (what went to the host) */
function handed(k: Kernel): number {
  const m = mbufStats(k);
  return m.loanedBytes + m.copiedBytes;
}

/* stuckSend: a 16 MiB send to a peer that does not read, waiting for room once the host is full */
async function stuckSend(mode: SendMode) {
  const k = scope.kernel({ physPages: 8192 });
  const { so, remote, got } = await pausedPair(scope, k, { sendHighWater: 256 * KiB }, drain);
  const p = k.createProcess();
  const region = pattern(TOTAL, 21);
  const va = await userMemory(p, TOTAL, region);
  const sending = so.send(p, va, TOTAL, { mode });
  sending.catch(() => {});
  await stalled(() => handed(k), 'the send');
  expect(await settled(sending)).toBe(false);
  /* the host holds a few MiB: the second half of the range is not sent yet */
  expect(handed(k)).toBeGreaterThan(0);
  expect(handed(k)).toBeLessThan(TOTAL / 2);
  return { k, so, remote, got, p, region, va, sending };
}

/* sendError: the SendError a send failed with, its code, and its bytesSent */
async function sendError(sending: Promise<unknown>, code: string): Promise<SendError> {
  const err = await failure(sending);
  expect(err).toBeInstanceOf(SendError);
  expect(err.code).toBe(code);
  expect(err.message).toMatch(/^sosend: \d+ of 16777216 bytes sent, then /);
  return err as SendError;
}

describe('a send that fails part-way', () => {
  for (const mode of ['loan', 'copy'] as const) {
    it(`${mode}: memory unmapped while it waits -> EFAULT with bytesSent = what the peer gets; the socket goes on`, async () => {
      const s = await stuckSend(mode);
      const before = handed(s.k);
      s.p.munmap(s.va + TOTAL / 2, TOTAL / 2);
      s.remote.resume();
      const err = await sendError(s.sending, 'EFAULT');
      expect(err.bytesSent).toBeGreaterThanOrEqual(before);
      expect(err.bytesSent).toBeLessThanOrEqual(TOTAL / 2);
      await err.done;
      expect(s.k.stats().loanedPages).toBe(0);
      expect(mbufStats(s.k).kvaPagesInUse).toBe(0);
      expect(mbufStats(s.k).clustersInUse).toBe(0);

      expect(s.so.isOpen).toBe(true);
      const after = await userMemory(s.p, 5, Buffer.from('after'));
      await (await s.so.send(s.p, after, 5, { mode })).done;
      await s.so.close();
      const d = await s.got;
      expect(d.bytes.length).toBe(err.bytesSent + 5);
      expect(d.bytes.subarray(0, err.bytesSent).equals(s.region.subarray(0, err.bytesSent))).toBe(true);
      expect(d.bytes.subarray(err.bytesSent).toString()).toBe('after');
      s.p.exit();
      expectAtRest(s.k);
    });
  }

  it('loan: the process exits while it waits -> ESRCH with bytesSent = what the peer gets (the original bytes)', async () => {
    const s = await stuckSend('loan');
    s.p.exit();
    s.remote.resume();
    const err = await sendError(s.sending, 'ESRCH');
    expect(err.bytesSent).toBeGreaterThan(0);
    expect(err.bytesSent).toBeLessThan(TOTAL);
    await err.done;
    expect(s.k.stats().loanedPages).toBe(0);
    expect(s.k.stats().processes).toBe(0);
    expect(s.so.isOpen).toBe(true);
    await s.so.close();
    const d = await s.got;
    expect(d.bytes.length).toBe(err.bytesSent);
    expect(d.bytes.equals(s.region.subarray(0, err.bytesSent))).toBe(true);
    expectAtRest(s.k);
  });

  it('loan: the socket is reset while it waits -> EPIPE with bytesSent; the socket is closed', async () => {
    const s = await stuckSend('loan');
    const before = handed(s.k);
    await s.so.close({ linger: 0 });
    const err = await sendError(s.sending, 'EPIPE');
    expect(err.bytesSent).toBe(before);
    /* the reset threw away what the host had not delivered: those chunks fail too */
    expect((await failure(err.done)).code).toBe('EPIPE');
    expect(s.so.isOpen).toBe(false);
    s.p.exit();
    expectAtRest(s.k);
  });
});
