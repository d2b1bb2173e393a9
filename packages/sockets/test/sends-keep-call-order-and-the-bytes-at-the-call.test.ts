/*
 * Sends keep call order and carry the bytes at the call. A send's place in the socket's line is fixed
 * when send() is called, whatever its mode and whether or not anyone awaits it; and it carries the
 * bytes that were in memory at that moment, even if the process writes the buffer before the send has
 * gone: a send with nothing ahead of it that fits the send buffer is copied or loaned before send()
 * returns, and anything else is pinned copy-on-write at the call (sosend.ts).
 *
 * The first test must run before anything in this process has measured the `auto` threshold: it is
 * the case where `auto` used to wait for the measurement before taking its place in line.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PAGE_SIZE, Prot } from '@loanout/core';
import { mbufStats } from '@loanout/mbuf';
import { afterEach, describe, expect, it } from 'vitest';
import { autoThresholdKnown, type SendMode, sosendAutoThreshold } from '../src/index.js';
import {
  drain,
  drainedPair,
  expectAtRest,
  KiB,
  MiB,
  pattern,
  pausedPair,
  Scope,
  stalled,
  userMemory,
} from './helpers.js';

const scope = new Scope();
afterEach(() => scope.cleanup());

const MODES: SendMode[] = ['copy', 'loan', 'auto'];

describe('sends keep call order', () => {
  it('auto then copy, not awaited, while the auto threshold is still unmeasured: a before b', async () => {
    expect(autoThresholdKnown()).toBeNull();
    const k = scope.kernel();
    const { so, got } = await drainedPair(scope, k);
    const p = k.createProcess();
    const a = pattern(64 * KiB, 1);
    const b = pattern(100, 2);
    const va = await userMemory(p, a.length, a);
    const vb = await userMemory(p, b.length, b);
    const ra = so.send(p, va, a.length);
    const rb = so.send(p, vb, b.length, { mode: 'copy' });
    await Promise.all([(await ra).done, (await rb).done]);
    await so.close();
    expect((await got).bytes.equals(Buffer.concat([a, b]))).toBe(true);
    p.exit();
    expectAtRest(k);
  });

  it('every pair of modes, not awaited, threshold measured: call order, also behind a long send', async () => {
    await sosendAutoThreshold();
    const k = scope.kernel({ physPages: 8192 });
    const { so, got } = await drainedPair(scope, k, { sendHighWater: 64 * KiB });
    const p = k.createProcess();
    const parts: Buffer[] = [];
    const sends = [];
    /* a long send first, so that most of the others queue behind it */
    const long = pattern(3 * MiB + 5, 9);
    const vl = await userMemory(p, long.length, long);
    parts.push(long);
    sends.push(so.send(p, vl, long.length, { mode: 'loan' }));
    for (const x of MODES) {
      for (const y of MODES) {
        for (const [mode, size] of [
          [x, 5000],
          [y, 70_000],
        ] as const) {
          const bytes = pattern(size, parts.length);
          const va = await userMemory(p, size, bytes);
          parts.push(bytes);
          sends.push(so.send(p, va, size, { mode }));
        }
      }
    }
    const results = await Promise.all(sends);
    await Promise.all(results.map((r) => r.done));
    await so.close();
    expect((await got).bytes.equals(Buffer.concat(parts))).toBe(true);
    p.exit();
    expectAtRest(k);
  });
});

describe('a send carries the bytes at the call', () => {
  for (const mode of MODES) {
    it(`${mode}: a 4-byte send on an idle socket, the buffer written before anyone awaits`, async () => {
      const k = scope.kernel();
      const { so, got } = await drainedPair(scope, k);
      const p = k.createProcess();
      const va = await userMemory(p, PAGE_SIZE, Buffer.from('abcd'));
      const r = so.send(p, va, 4, { mode });
      /* the process goes on before the send has settled, and writes the buffer */
      await p.write(va, Buffer.from('WXYZ'));
      await (await r).done;
      await so.close();
      expect((await got).bytes.toString()).toBe('abcd');
      expect((await p.read(va, 4)).toString()).toBe('WXYZ');
      p.exit();
      expectAtRest(k);
    });

    it(`${mode}: a send larger than the send buffer, queued behind another, to a peer that reads late`, async () => {
      const k = scope.kernel({ physPages: 16384 });
      const { so, remote, got } = await pausedPair(scope, k, { sendHighWater: 64 * KiB }, drain);
      const p = k.createProcess();
      const first = pattern(12 * MiB, 3);
      const second = pattern(2 * MiB + 123, 4);
      const v1 = await userMemory(p, first.length, first);
      const v2 = await userMemory(p, second.length + 1, Buffer.concat([Buffer.alloc(1), second]));
      const r1 = so.send(p, v1, first.length, { mode });
      const r2 = so.send(p, v2 + 1, second.length, { mode });
      /* both buffers are overwritten, whole, while the host is full and most of it has not gone */
      const handed = () => mbufStats(k).loanedBytes + mbufStats(k).copiedBytes;
      await stalled(handed, 'the first send');
      expect(handed()).toBeLessThan(first.length / 2);
      await p.write(v1, Buffer.alloc(first.length, 0xee));
      await p.write(v2, Buffer.alloc(second.length + 1, 0xdd));
      remote.resume();
      await Promise.all([(await r1).done, (await r2).done]);
      await so.close();
      expect((await got).bytes.equals(Buffer.concat([first, second]))).toBe(true);
      p.exit();
      expectAtRest(k);
    });
  }

  it('pins memory never touched (the zero page) and the pages of a file, private or shared', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'loanout-pin-'));
    scope.defer(() => rm(dir, { recursive: true, force: true }));
    const file = pattern(64 * KiB, 8);
    await writeFile(join(dir, 'f'), file);
    const k = scope.kernel();
    const { so, remote, got } = await pausedPair(scope, k, { sendHighWater: 16 * KiB }, drain);
    const p = k.createProcess();
    const untouched = p.mmap(64 * KiB);
    const priv = await p.mmapFile(join(dir, 'f'), { prot: Prot.READ | Prot.WRITE });
    const shared = await p.mmapFile(join(dir, 'f'), { prot: Prot.READ | Prot.WRITE, shared: true });
    await p.read(shared, 64 * KiB); /* resident: a page that must be read in first is not pinned */
    const blocker = await userMemory(p, 256 * KiB);
    const sends = [
      so.send(p, blocker, 256 * KiB, { mode: 'copy' }),
      so.send(p, untouched, 64 * KiB, { mode: 'loan' }),
      so.send(p, priv, 64 * KiB, { mode: 'copy' }),
      so.send(p, shared, 64 * KiB, { mode: 'loan' }),
    ];
    await p.write(untouched + 100, Buffer.from('written after the call'));
    await p.write(priv, Buffer.alloc(64 * KiB, 1));
    await p.write(shared, Buffer.alloc(64 * KiB, 2));
    remote.resume();
    for (const r of await Promise.all(sends)) await r.done;
    await so.close();
    const bytes = (await got).bytes;
    expect(bytes.length).toBe(448 * KiB);
    expect(bytes.subarray(256 * KiB, 320 * KiB).equals(Buffer.alloc(64 * KiB))).toBe(true);
    expect(bytes.subarray(320 * KiB, 384 * KiB).equals(file)).toBe(true);
    expect(bytes.subarray(384 * KiB).equals(file)).toBe(true);
    p.exit();
    await k.sync();
    /* the shared mapping's write reached the file; the wire kept what the file held at the call */
    expect((await readFile(join(dir, 'f'))).equals(Buffer.alloc(64 * KiB, 2))).toBe(true);
    expectAtRest(k);
  });

  it('a range part in RAM and part a file page not yet read: the resident part is pinned all the same', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'loanout-pin-'));
    scope.defer(() => rm(dir, { recursive: true, force: true }));
    const file = pattern(PAGE_SIZE, 8);
    await writeFile(join(dir, 'f'), file);
    const k = scope.kernel();
    const { so, remote, got } = await pausedPair(scope, k, { sendHighWater: 16 * KiB }, drain);
    const p = k.createProcess();
    const anon = await userMemory(p, PAGE_SIZE, Buffer.alloc(PAGE_SIZE, 0x41));
    const f = await p.mmapFile(join(dir, 'f'), { prot: Prot.READ });
    expect(f).toBe(anon + PAGE_SIZE);
    /* a send ahead of it, so that ours is queued (pinned, not sent) at the call */
    const blocker = await userMemory(p, 256 * KiB);
    const r0 = so.send(p, blocker, 256 * KiB, { mode: 'copy' });
    const r1 = so.send(p, anon, 2 * PAGE_SIZE, { mode: 'copy' });
    await p.write(anon, Buffer.alloc(PAGE_SIZE, 0x42));
    remote.resume();
    await (await r0).done;
    await (await r1).done;
    await so.close();
    const wire = (await got).bytes.subarray(256 * KiB);
    /* the file page may be read late (the documented exception); the anonymous page may not */
    expect(wire.subarray(0, PAGE_SIZE).equals(Buffer.alloc(PAGE_SIZE, 0x41))).toBe(true);
    expect(wire.subarray(PAGE_SIZE).equals(file)).toBe(true);
    p.exit();
    await k.sync();
    expectAtRest(k);
  });

  it('a write to a pinned page takes a copy-on-write fault; mprotect after the call does not change the wire', async () => {
    const k = scope.kernel();
    const { so, remote, got } = await pausedPair(scope, k, { sendHighWater: 16 * KiB }, drain);
    const p = k.createProcess();
    const data = pattern(64 * KiB, 7);
    const blocker = await userMemory(p, 256 * KiB);
    const va = await userMemory(p, data.length, data);
    const r0 = so.send(p, blocker, 256 * KiB, { mode: 'loan' });
    const r1 = so.send(p, va, data.length, { mode: 'copy' });
    expect(so.stats().pinnedPages).toBeGreaterThanOrEqual(16);
    const cow0 = k.stats().cowFaults;
    await p.write(va, Buffer.alloc(data.length, 1));
    expect(k.stats().cowFaults - cow0).toBe(16);
    p.mprotect(va, data.length, Prot.READ);
    remote.resume();
    await Promise.all([(await r0).done, (await r1).done]);
    expect(so.stats().pinnedPages).toBe(0);
    await so.close();
    expect((await got).bytes.subarray(256 * KiB).equals(data)).toBe(true);
    p.exit();
    expectAtRest(k);
  });
});
