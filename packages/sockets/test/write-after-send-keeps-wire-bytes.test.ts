/*
 * Write after send: a zero-copy send lends the user's pages to the network until the host has the
 * bytes. A user who writes the buffer before then takes a fault that breaks the loan (the writer gets
 * a copy); the wire still carries the bytes as they were when send() was called.
 */
import { mbufStats } from '@loanout/mbuf';
import { afterEach, describe, expect, it } from 'vitest';
import {
  expectAtRest,
  hashUntilClose,
  MiB,
  PAGE_SIZE,
  pausedPair,
  random,
  Scope,
  settled,
  sha256,
  userMemory,
} from './helpers.js';

const scope = new Scope();
afterEach(() => scope.cleanup());

describe('write after send', () => {
  it('keeps the original bytes on the wire while the writer sees its new bytes', async () => {
    /* 16 MiB, more than loopback holds for a paused reader, in one chunk: all of it stays in flight */
    const len = 16 * MiB;
    const k = scope.kernel({ physPages: 3 * (len / PAGE_SIZE) + 1024 }, { kvaBudgetBytes: 2 * len });
    const { so, remote, got: wire } = await pausedPair(scope, k, { sendHighWater: 2 * len }, hashUntilClose);
    const p = k.createProcess();
    const original = random(len);
    const va = await userMemory(p, len, original);

    const r = await so.send(p, va, len, { mode: 'loan' });
    expect(r).toMatchObject({ bytes: len, loanedBytes: len, copiedBytes: 0 });
    expect(await settled(r.done)).toBe(false);
    const before = k.stats();
    expect(before.loanedPages).toBe(len / PAGE_SIZE);

    /* the user reuses the buffer before the send is done */
    const fresh = random(len);
    await p.write(va, fresh);
    const after = k.stats();
    expect(after.loanBreaks).toBeGreaterThan(before.loanBreaks);
    expect(
      after.loanBreaks - before.loanBreaks + (after.cowFaults - before.cowFaults),
    ).toBeGreaterThanOrEqual(len / PAGE_SIZE);
    /* the loaned pages are orphans now, alive for the network only */
    expect(after.orphanPages).toBe(len / PAGE_SIZE);
    expect(await settled(r.done)).toBe(false);
    expect((await p.read(va, len)).equals(fresh)).toBe(true);

    remote.resume();
    await r.done;
    expect(k.stats().loanedPages).toBe(0);
    expect(k.stats().orphanPages).toBe(0);
    expect(mbufStats(k).kvaPagesInUse).toBe(0);
    await so.close();

    const got = await wire;
    expect(got.error).toBeNull();
    expect(got.length).toBe(len);
    expect(got.hash).toBe(sha256(original));
    expect(got.hash).not.toBe(sha256(fresh));
    expect(sha256(await p.read(va, len))).toBe(sha256(fresh));
    p.exit();
    expectAtRest(k);
  });

  it('a partial overwrite of an unaligned send breaks only the pages written', async () => {
    const len = 8 * MiB;
    const k = scope.kernel({ physPages: 3 * (len / PAGE_SIZE) + 1024 }, { kvaBudgetBytes: 2 * len });
    const { so, remote, got: wire } = await pausedPair(scope, k, { sendHighWater: 2 * len }, hashUntilClose);
    const p = k.createProcess();
    const original = random(len + PAGE_SIZE);
    const va = await userMemory(p, original.length, original);
    const off = 1000;
    const r = await so.send(p, va + off, len, { mode: 'loan' });
    expect(await settled(r.done)).toBe(false);
    const before = k.stats();

    /* scribbles on four pages: the first, two in the middle (one write across them), the last */
    await p.write(va + off, Buffer.from('XXXX'));
    await p.write(va + len / 2 + 100, Buffer.alloc(PAGE_SIZE, 0x55));
    await p.write(va + off + len - 1, Buffer.from('Z'));
    const after = k.stats();
    expect(after.loanBreaks - before.loanBreaks).toBe(4);
    expect(after.loanedPages).toBe(before.loanedPages);
    expect(after.orphanPages).toBe(4);

    remote.resume();
    await r.done;
    await so.close();
    const got = await wire;
    expect(got.length).toBe(len);
    expect(got.hash).toBe(sha256(original.subarray(off, off + len)));
    const now = await p.read(va + off, 4);
    expect(now.toString()).toBe('XXXX');
    p.exit();
    expectAtRest(k);
  });
});
