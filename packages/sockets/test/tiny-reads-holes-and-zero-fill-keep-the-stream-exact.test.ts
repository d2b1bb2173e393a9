/*
 * Tiny reads, holes and zero-fill keep the stream exact. Every read of the host's starts a page of
 * the receive area, so a stream of one-byte reads leaves a hole of 4095 bytes after each byte, and a
 * recv with tail 'zero-fill' moves such a page whole, zeroed after the byte. Attacks on that rule
 * that held (kept as cheap regression tests): the smallest receive area (two one-page chunks) filled
 * a byte per chunk pauses and resumes reading without a stall, in every mode; the receive area's old
 * frames, stamped with a marker, never reach a process whatever the mode, tail, offset or length;
 * receives of mixed modes queued before the data take the stream in call order; a zero-fill recv
 * asleep for data ends at once on destroy, a reset, exit, munmap or close; a zero-fill recv that can't
 * get a fresh run at a tail copies instead and keeps the rest of the buffer's page; a bad or
 * changing `tail` is EINVAL, or read once. And the zerocopy echo copies nothing for 16 clients typing
 * a byte at a time and half-closing mid-line, nor with the smallest receive area and a one-page ring.
 */
import { type Kernel, PAGE_SIZE, uvmPglistAlloc, uvmPglistFree, type VmPage } from '@loanout/core';
import { afterEach, describe, expect, it } from 'vitest';
import type { RecvOptions } from '../src/index.js';
import {
  expectAtRest,
  expectError,
  KiB,
  pair,
  pattern,
  random,
  Scope,
  settled,
  tick,
  until,
  zeroCopyEcho,
} from './helpers.js';

const scope = new Scope();
afterEach(() => scope.cleanup());

/* stamp every free frame of k with `v` (the receive area takes its runs unzeroed) */
function stampFreeFrames(k: Kernel, v: number): void {
  const held: VmPage[] = [];
  for (let run = uvmPglistAlloc(k.uvm, 1, { zero: false }); run !== null; ) {
    held.push(run[0]);
    run = uvmPglistAlloc(k.uvm, 1, { zero: false });
  }
  for (const pg of held) k.uvm.ram.bytes.fill(v, pg.frame * PAGE_SIZE, (pg.frame + 1) * PAGE_SIZE);
  uvmPglistFree(held);
}

const HOWS: RecvOptions[] = [
  { mode: 'copy' },
  { mode: 'transfer' },
  { mode: 'transfer', tail: 'zero-fill' },
  { mode: 'auto', tail: 'zero-fill' },
];

describe('tiny reads, holes and zero-fill', () => {
  it('the smallest area (2 chunks of 1 page), one byte a read: every mode gets the stream, reading never stalls', async () => {
    for (const how of HOWS) {
      const k = scope.kernel();
      const { so, remote } = await pair(scope, k, () => {}, { recvChunkBytes: PAGE_SIZE, recvChunks: 2 });
      const p = k.createProcess();
      const va = p.mmap(4 * PAGE_SIZE);
      const data = pattern(12, 5);
      const writing = (async () => {
        for (let i = 0; i < data.length; i++) {
          remote.write(data.subarray(i, i + 1));
          await tick(1);
        }
      })();
      const got: Buffer[] = [];
      for (let n = 0; n < data.length; ) {
        const at = va + (n % 4) * PAGE_SIZE;
        const m = await so.recv(p, at, PAGE_SIZE, how);
        got.push(await p.read(at, m));
        n += m;
        k.checkInvariants();
      }
      await writing;
      expect(Buffer.concat(got).equals(data)).toBe(true);
      const st = so.stats();
      expect(st.bytesReceived).toBe(data.length);
      expect(st.receivedByCopy + st.receivedByTransfer).toBe(data.length);
      if (how.mode === 'transfer' && how.tail === 'zero-fill') {
        expect(st).toMatchObject({
          receivedByCopy: 0,
          transferZeroFilled: st.pagesTransferred * PAGE_SIZE - 12,
        });
      } else {
        expect(st).toMatchObject({ receivedByTransfer: 0, transferZeroFilled: 0 });
      }
      p.exit();
      await so.close({ linger: 0 });
      expectAtRest(k);
    }
  });

  it("the area's old frames, stamped with a marker, never reach a process (any mode, tail, offset, length)", async () => {
    const k = scope.kernel({ physPages: 1024 });
    stampFreeFrames(k, 0xab);
    const { so, remote } = await pair(scope, k, () => {}, { recvChunkBytes: 16 * KiB, recvChunks: 3 });
    const p = k.createProcess();
    const va = p.mmap(64 * KiB);
    await p.write(va, Buffer.alloc(64 * KiB, 0x11));
    let j = 0;
    for (const n of [1, 5000, 4096, 3, 9000, 12_288, 700, 1, 16_384, 2]) {
      /* bytes that are never the marker */
      const d = Buffer.from(Array.from({ length: n }, (_, i) => 0x30 + ((i + n) % 40)));
      remote.write(d);
      await until(() => so.recvQueued >= n, 'the bytes arrive');
      for (let got = 0; got < n; j++) {
        const at = va + (j % 8) * 8 * KiB + (j % 3 === 2 ? 100 : 0);
        const m = await so.recv(p, at, 8 * KiB - (j % 5) * 1000, HOWS[j % HOWS.length]);
        expect((await p.read(va, 64 * KiB)).includes(0xab)).toBe(false);
        got += m;
        /* frames freed meanwhile (the process's old pages, fresh runs) are stamped again */
        stampFreeFrames(k, 0xab);
      }
    }
    k.checkInvariants();
    p.exit();
    await so.close({ linger: 0 });
    expectAtRest(k);
  });

  it('recvs of every mode and tail queued before the data take the stream in call order', async () => {
    const k = scope.kernel();
    const { so, remote } = await pair(scope, k, () => {}, { recvChunkBytes: 4 * PAGE_SIZE, recvChunks: 2 });
    const p = k.createProcess();
    const hows: RecvOptions[] = [
      ...HOWS,
      { mode: 'copy', tail: 'zero-fill' },
      { mode: 'transfer', tail: 'zero-fill' },
    ];
    const vas = hows.map(() => p.mmap(4 * PAGE_SIZE));
    const recvs = hows.map((how, i) => so.recv(p, vas[i], 4 * PAGE_SIZE, how));
    const pieces = [5000, 1, 9000, 3, 8192, 77, 100].map((n, i) => pattern(n, i + 1));
    for (const piece of pieces) {
      remote.write(piece);
      await tick(5);
    }
    const counts = await Promise.all(recvs);
    const got = Buffer.concat(await Promise.all(counts.map((n, i) => p.read(vas[i], n))));
    expect(got.equals(Buffer.concat(pieces).subarray(0, got.length))).toBe(true);
    k.checkInvariants();
    p.exit();
    await so.close({ linger: 0 });
    expectAtRest(k);
  });

  it('a zero-fill recv asleep for data ends at once on destroy, a reset, exit, munmap or close, and the one queued behind it too', async () => {
    const outcomes: Record<string, unknown[]> = {};
    for (const what of ['destroy', 'reset', 'exit', 'munmap', 'close'] as const) {
      const k = scope.kernel();
      const { so, remote } = await pair(scope, k, () => {}, { recvChunkBytes: 2 * PAGE_SIZE, recvChunks: 2 });
      const p = k.createProcess();
      const va = p.mmap(4 * PAGE_SIZE);
      const zf = { mode: 'transfer', tail: 'zero-fill' } as const;
      const rs = [so.recv(p, va, 4 * PAGE_SIZE, zf), so.recv(p, va, 4 * PAGE_SIZE, zf)];
      expect(await settled(rs[0])).toBe(false);
      if (what === 'destroy') so.destroy();
      if (what === 'reset') remote.resetAndDestroy();
      if (what === 'exit') p.exit();
      if (what === 'munmap') p.munmap(va, 4 * PAGE_SIZE);
      if (what === 'close') void so.close({ linger: 0 });
      const out = await Promise.allSettled(rs);
      outcomes[what] = out.map((o) =>
        o.status === 'fulfilled' ? o.value : (o.reason as { code: string }).code,
      );
      if (!p.exited) p.exit();
      await so.close({ linger: 0 }).catch(() => undefined);
      expectAtRest(k);
    }
    expect(outcomes).toEqual({
      destroy: ['ECONNABORTED', 'ECONNABORTED'],
      reset: ['ECONNRESET', 'ECONNRESET'],
      exit: ['ESRCH', 'ESRCH'],
      munmap: ['EFAULT', 'EFAULT'],
      close: [0, 0],
    });
  });

  it('a zero-fill recv that cannot get a fresh run at a tail copies (no-run): the rest of the page is kept', async () => {
    const k = scope.kernel({ physPages: 1024 });
    const { so, remote } = await pair(scope, k, () => {}, { recvChunkBytes: 64 * KiB, recvChunks: 4 });
    const data = pattern(10_000, 6);
    remote.write(data);
    await until(() => so.recvQueued === data.length, 'the bytes arrive');
    const p = k.createProcess();
    const va = p.mmap(4 * PAGE_SIZE);
    await p.write(va, Buffer.alloc(4 * PAGE_SIZE, 0x55));
    /* hold every other free page: no run of 16 is left */
    const held: VmPage[][] = [];
    for (let run = uvmPglistAlloc(k.uvm, 1); run !== null; run = uvmPglistAlloc(k.uvm, 1)) held.push(run);
    for (let i = 0; i < held.length; i += 2) uvmPglistFree(held[i]);
    const n = await so.recv(p, va, 4 * PAGE_SIZE, { mode: 'transfer', tail: 'zero-fill' });
    for (let i = 1; i < held.length; i += 2) uvmPglistFree(held[i]);
    expect(n).toBe(data.length);
    const mem = await p.read(va, 4 * PAGE_SIZE);
    expect(mem.subarray(0, n).equals(data)).toBe(true);
    expect(mem.subarray(n).every((x) => x === 0x55)).toBe(true);
    expect(so.stats()).toMatchObject({
      receivedByCopy: data.length,
      transferZeroFilled: 0,
      transferFallbacks: { 'no-run': 1 },
    });
    k.checkInvariants();
    p.exit();
    await so.close({ linger: 0 });
    expectAtRest(k);
  });

  it('close with unread bytes a page apart, reading paused: it drops them, reads and drops the rest, and lets go', async () => {
    const k = scope.kernel();
    const { so, remote } = await pair(scope, k, () => {}, { recvChunkBytes: 2 * PAGE_SIZE, recvChunks: 3 });
    for (let i = 0; i < 12; i++) {
      remote.write(Buffer.from([i]));
      await tick(2);
    }
    /* each read a page of its own: the six pages of the area hold a few bytes, and reading pauses */
    await until(() => so.recvQueued > 0, 'some bytes arrive');
    const closing = so.close();
    for (let i = 0; i < 12; i++) {
      remote.write(Buffer.from([i]));
      await tick(1);
    }
    remote.end();
    await closing;
    expect(so.recvQueued).toBe(0);
    expectAtRest(k);
  });

  it('a bad tail is EINVAL naming soreceive with nothing consumed; a tail getter is read once', async () => {
    const k = scope.kernel();
    const { so, remote } = await pair(scope, k);
    remote.write(pattern(100, 7));
    await until(() => so.recvQueued === 100, 'the bytes arrive');
    const p = k.createProcess();
    const va = p.mmap(4 * PAGE_SIZE);
    for (const tail of ['ZERO-FILL', 'zero_fill', 1, {}, true]) {
      const err = await expectError(so.recv(p, va, 100, { mode: 'transfer', tail } as never), 'EINVAL');
      expect(err.message).toMatch(/soreceive: tail/);
    }
    expect(so.recvQueued).toBe(100);
    let reads = 0;
    const opts = {
      mode: 'transfer' as const,
      get tail() {
        return reads++ === 0 ? ('zero-fill' as const) : ('bogus' as never);
      },
    };
    expect(await so.recv(p, va, 4 * PAGE_SIZE, opts)).toBe(100);
    expect(reads).toBe(1);
    expect(so.stats()).toMatchObject({ receivedByTransfer: 100, transferZeroFilled: PAGE_SIZE - 100 });
    p.exit();
    await so.close({ linger: 0 });
    expectAtRest(k);
  });
});

describe('the zerocopy echo under tiny writes', () => {
  it('16 clients typing a line a byte at a time, half-closing mid-line: 0 bytes copied either way', async () => {
    const lines = Array.from({ length: 16 }, (_, i) =>
      Buffer.from(`client ${i} types this, then hangs up mid-li`),
    );
    await zeroCopyEcho(
      scope,
      { kernel: scope.kernel({ physPages: 4096 }) },
      lines.map((l) => [...l].map((b) => Buffer.from([b]))),
      { ms: 1, every: 3 },
    );
  });

  it('the smallest area (2 chunks of 1 page) and a ring of one page: bytes, blobs and a burst, 0 copied', async () => {
    const burst = Array.from({ length: 50 }, (_, i) => Buffer.from([i]));
    await zeroCopyEcho(
      scope,
      {
        kernel: scope.kernel({ physPages: 4096 }),
        recvChunkBytes: PAGE_SIZE,
        recvChunks: 2,
        bufferBytes: PAGE_SIZE,
        buffers: 1,
      },
      [[Buffer.from('a'), random(10_000), Buffer.from('bc'), random(100 * KiB + 5), ...burst]],
      { ms: 1, every: 1 },
    );
  });
});
