/*
 * recv by page transfer moves whole pages. With { mode: 'transfer' }, received bytes that fill whole
 * pages of a page-aligned buffer of private anonymous memory become the process's pages at that
 * address -- the very frames node:net read into, no copy -- and the receive area takes fresh pages for
 * them. What is not whole pages is copied; a buffer that can't take pages (unaligned, a file's, shared
 * memory) is copied into, and the fallback counted by why. The copy-on-write promise holds both ways:
 * pages the buffer held before, still on loan to a send, stay with the network; a page transferred in
 * and then sent by loan is read-only until its send is done.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Kernel, Prot, uvmPglistAlloc, uvmPglistFree, type VmPage } from '@loanout/core';
import { mbufStats } from '@loanout/mbuf';
import { afterEach, describe, expect, it } from 'vitest';
import type { Socket } from '../src/index.js';
import {
  drain,
  expectAtRest,
  KiB,
  PAGE_SIZE,
  pair,
  pattern,
  pausedPair,
  Scope,
  settled,
  until,
  userMemory,
} from './helpers.js';

const scope = new Scope();
afterEach(() => scope.cleanup());

/* a socket whose peer has sent `data`, all of it queued in the receive area */
async function received(k: Kernel, data: Buffer, opts = {}) {
  const p0 = await pair(scope, k, () => {}, { recvChunkBytes: 64 * KiB, recvChunks: 4, ...opts });
  p0.remote.write(data);
  await until(() => p0.so.recvQueued === data.length, 'the bytes arrive');
  return p0;
}

/* frames of the pages mapped at [va, va + n pages) */
function frames(p: { map: { pmap: { extract(vpn: number): number } } }, va: number, n: number) {
  return Array.from({ length: n }, (_, i) => p.map.pmap.extract(va / PAGE_SIZE + i));
}

async function recvAll(
  so: Socket,
  p: Parameters<Socket['recv']>[0],
  va: number,
  n: number,
  mode: 'transfer' | 'copy' | 'auto',
) {
  let got = 0;
  while (got < n) got += await so.recv(p, va + got, n - got, { mode });
  return got;
}

describe('recv by page transfer', () => {
  it('moves whole pages into a page-aligned buffer: no copy, the frames node:net read into', async () => {
    const k = scope.kernel();
    const data = pattern(64 * KiB, 1);
    const { so } = await received(k, data);
    const p = k.createProcess();
    const va = await userMemory(p, 64 * KiB, Buffer.alloc(64 * KiB, 0xee));
    const wired = k.stats().wiredPages;
    const head = (so as unknown as { rcv: { head(n: number): Buffer } }).rcv.head(1)!;
    const firstFrame = head.byteOffset / PAGE_SIZE;
    expect(await recvAll(so, p, va, data.length, 'transfer')).toBe(data.length);
    expect((await p.read(va, data.length)).equals(data)).toBe(true);
    expect(frames(p, va, 16)[0]).toBe(firstFrame);
    expect(so.stats()).toMatchObject({
      receivedByTransfer: 64 * KiB,
      receivedByCopy: 0,
      pagesTransferred: 16,
      transferFallbacks: {},
    });
    expect(mbufStats(k)).toMatchObject({ recvTransferredBytes: 64 * KiB, recvPagesTransferred: 16 });
    expect(k.stats().pagesTransferred).toBe(16);
    /* the receive area took fresh pages for those it gave: it holds as many as before */
    expect(k.stats().wiredPages).toBe(wired);
    /* and the process's old pages went back to the free lists */
    k.checkInvariants();
    p.exit();
    await so.close({ linger: 0 });
    expectAtRest(k);
  });

  it('moves whole pages and copies the partly filled last page of a read; the rest of that page is kept', async () => {
    const k = scope.kernel();
    const data = pattern(10_000, 2);
    const { so } = await received(k, data);
    const p = k.createProcess();
    const va = await userMemory(p, 16 * KiB, Buffer.alloc(16 * KiB, 0x55));
    expect(await so.recv(p, va, 16 * KiB, { mode: 'transfer' })).toBe(10_000);
    expect((await p.read(va, 10_000)).equals(data)).toBe(true);
    expect((await p.read(va + 10_000, 16 * KiB - 10_000)).every((x) => x === 0x55)).toBe(true);
    expect(so.stats()).toMatchObject({
      receivedByTransfer: 8192,
      receivedByCopy: 1808,
      pagesTransferred: 2,
      transferZeroFilled: 0,
      transferFallbacks: {},
    });
    k.checkInvariants();
    p.exit();
    await so.close({ linger: 0 });
    expectAtRest(k);
  });

  it("with tail 'zero-fill' moves that last page too, zeroed after the bytes: nothing copied", async () => {
    const k = scope.kernel();
    const data = pattern(10_000, 2);
    const { so } = await received(k, data);
    const p = k.createProcess();
    const va = await userMemory(p, 16 * KiB, Buffer.alloc(16 * KiB, 0x55));
    const before = frames(p, va, 3);
    expect(await so.recv(p, va, 16 * KiB, { mode: 'transfer', tail: 'zero-fill' })).toBe(10_000);
    expect(frames(p, va, 3).some((f, i) => f === before[i])).toBe(false);
    expect((await p.read(va, 10_000)).equals(data)).toBe(true);
    /* the moved page is zero after the bytes; the buffer's next page is as it was */
    expect((await p.read(va + 10_000, 3 * PAGE_SIZE - 10_000)).every((x) => x === 0)).toBe(true);
    expect((await p.read(va + 3 * PAGE_SIZE, PAGE_SIZE)).every((x) => x === 0x55)).toBe(true);
    expect(so.stats()).toMatchObject({
      receivedByTransfer: 10_000,
      receivedByCopy: 0,
      pagesTransferred: 3,
      transferZeroFilled: 3 * PAGE_SIZE - 10_000,
    });
    expect(mbufStats(k).recvZeroFilledBytes).toBe(3 * PAGE_SIZE - 10_000);
    k.checkInvariants();
    p.exit();
    await so.close({ linger: 0 });
    expectAtRest(k);
  });

  it("with tail 'zero-fill' still copies a last page the buffer does not wholly hold, and never in copy or auto mode", async () => {
    const k = scope.kernel();
    const data = pattern(3 * 10_000, 2);
    const p0 = await pair(scope, k, () => {}, { recvChunkBytes: 64 * KiB, recvChunks: 4 });
    const p = k.createProcess();
    const va = await userMemory(p, 16 * KiB, Buffer.alloc(16 * KiB, 0x55));
    const zf = { tail: 'zero-fill' } as const;
    const got: number[] = [];
    for (const [i, mode] of (['transfer', 'copy', 'auto'] as const).entries()) {
      p0.remote.write(data.subarray(i * 10_000, (i + 1) * 10_000));
      await until(() => p0.so.recvQueued === 10_000, 'a message arrives');
      /* a buffer of exactly 10 000 bytes: its last page is not all the buffer's to zero */
      got.push(await p0.so.recv(p, va, mode === 'transfer' ? 10_000 : 16 * KiB, { mode, ...zf }));
      expect((await p.read(va, 10_000)).equals(data.subarray(i * 10_000, (i + 1) * 10_000))).toBe(true);
      expect((await p.read(va + 10_000, 16 * KiB - 10_000)).every((x) => x === 0x55)).toBe(true);
    }
    expect(got).toEqual([10_000, 10_000, 10_000]);
    expect(p0.so.stats()).toMatchObject({
      receivedByTransfer: 8192 + 8192,
      receivedByCopy: 1808 + 10_000 + 1808,
      transferZeroFilled: 0,
    });
    p.exit();
    await p0.so.close({ linger: 0 });
    expectAtRest(k);
  });

  it('auto copies a single whole page, and moves two or more', async () => {
    const k = scope.kernel();
    const data = pattern(3 * PAGE_SIZE, 3);
    const { so } = await received(k, data);
    const p = k.createProcess();
    const va = p.mmap(4 * PAGE_SIZE);
    expect(await so.recv(p, va, PAGE_SIZE, { mode: 'auto' })).toBe(PAGE_SIZE);
    expect(await so.recv(p, va + PAGE_SIZE, 2 * PAGE_SIZE, { mode: 'auto' })).toBe(2 * PAGE_SIZE);
    expect(so.stats()).toMatchObject({ receivedByCopy: PAGE_SIZE, receivedByTransfer: 2 * PAGE_SIZE });
    expect((await p.read(va, data.length)).equals(data)).toBe(true);
    p.exit();
    await so.close({ linger: 0 });
    expectAtRest(k);
  });

  it('falls back to copy, counted by why, for an unaligned, a file-backed and a shared buffer', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'loanout-xfer-'));
    scope.defer(() => rm(dir, { recursive: true, force: true }));
    await writeFile(join(dir, 'f'), Buffer.alloc(32 * KiB, 1));
    const k = scope.kernel();
    const data = pattern(3 * 32 * KiB, 4);
    const { so } = await received(k, data, { recvChunkBytes: 32 * KiB });
    const p = k.createProcess();
    const unaligned = p.mmap(64 * KiB) + 8;
    const file = await p.mmapFile(join(dir, 'f'), { prot: Prot.READ | Prot.WRITE });
    const shared = p.mmap(32 * KiB, { shared: true });
    const got = [
      await recvAll(so, p, unaligned, 32 * KiB, 'transfer'),
      await recvAll(so, p, file, 32 * KiB, 'transfer'),
      await recvAll(so, p, shared, 32 * KiB, 'transfer'),
    ];
    expect(got).toEqual([32 * KiB, 32 * KiB, 32 * KiB]);
    const back = Buffer.concat([
      await p.read(unaligned, 32 * KiB),
      await p.read(file, 32 * KiB),
      await p.read(shared, 32 * KiB),
    ]);
    expect(back.equals(data)).toBe(true);
    expect(so.stats()).toMatchObject({
      receivedByTransfer: 0,
      receivedByCopy: 96 * KiB,
      transferFallbacks: { unaligned: 1, 'file-backed': 1, shared: 1 },
    });
    expect(mbufStats(k).recvFallbacks).toEqual({ unaligned: 1, 'file-backed': 1, shared: 1 });
    p.exit();
    await k.sync();
    await so.close({ linger: 0 });
    expectAtRest(k);
  });

  it('falls back to copy (no-run) when no fresh run can be had for the receive area, and goes on', async () => {
    const k = scope.kernel({ physPages: 1024 });
    const data = pattern(64 * KiB, 5);
    const { so } = await received(k, data);
    /* take every run of 16 free pages: hold every other page of all free memory */
    const held: VmPage[][] = [];
    for (let run = uvmPglistAlloc(k.uvm, 1); run !== null; run = uvmPglistAlloc(k.uvm, 1)) held.push(run);
    for (let i = 0; i < held.length; i += 2) uvmPglistFree(held[i]);
    expect(uvmPglistAlloc(k.uvm, 16)).toBeNull();
    const p = k.createProcess();
    const va = p.mmap(64 * KiB);
    const q = await recvAll(so, p, va, 64 * KiB, 'transfer').catch((e) => e);
    for (let i = 1; i < held.length; i += 2) uvmPglistFree(held[i]);
    expect(q).toBe(64 * KiB);
    expect((await p.read(va, 64 * KiB)).equals(data)).toBe(true);
    expect(so.stats().transferFallbacks['no-run']).toBeGreaterThanOrEqual(1);
    expect(so.stats().receivedByCopy).toBe(64 * KiB);
    p.exit();
    await so.close({ linger: 0 });
    expectAtRest(k);
  });

  it('a buffer whose old pages are on loan to a send: they stay with the network, the process gets the new bytes', async () => {
    const k = scope.kernel();
    const { so, remote, got } = await pausedPair(
      scope,
      k,
      { recvChunkBytes: 64 * KiB, recvChunks: 4 },
      drain,
    );
    const p = k.createProcess();
    const old = pattern(64 * KiB, 6);
    const va = await userMemory(p, 64 * KiB, old);
    /* a big send ahead keeps ours queued behind it */
    const blocker = await userMemory(p, 4 * 1024 * KiB);
    const r0 = so.send(p, blocker, 4 * 1024 * KiB, { mode: 'loan' });
    const r1 = so.send(p, va, 64 * KiB, { mode: 'loan' });
    const fresh = pattern(64 * KiB, 7);
    remote.write(fresh);
    await until(() => so.recvQueued === fresh.length, 'the bytes arrive');
    expect(await recvAll(so, p, va, 64 * KiB, 'transfer')).toBe(64 * KiB);
    expect((await p.read(va, 64 * KiB)).equals(fresh)).toBe(true);
    expect(so.stats().pagesTransferred).toBe(16);
    k.checkInvariants();
    remote.resume();
    await (await r0).done;
    await (await r1).done;
    await so.close();
    expect((await got).bytes.subarray(4 * 1024 * KiB).equals(old)).toBe(true);
    p.exit();
    expectAtRest(k);
  });

  it('a page transferred in and sent by loan is read-only until done: a write breaks the loan, the wire keeps the bytes', async () => {
    const k = scope.kernel();
    const data = pattern(64 * KiB, 8);
    const { so, remote } = await received(k, data, { sendHighWater: 8 * 1024 * KiB });
    const p = k.createProcess();
    const va = p.mmap(64 * KiB);
    await recvAll(so, p, va, 64 * KiB, 'transfer');
    remote.pause();
    const echoed = drain(remote);
    /* 4 MiB ahead, handed to the host at once (the send buffer takes it) but not taken by the paused peer */
    const blocker = await userMemory(p, 4 * 1024 * KiB);
    const r0 = await so.send(p, blocker, 4 * 1024 * KiB, { mode: 'copy' });
    const r = await so.send(p, va, 64 * KiB, { mode: 'loan' });
    expect(r.loanedBytes).toBe(64 * KiB);
    expect(await settled(r.done)).toBe(false);
    const breaks = k.stats().loanBreaks;
    await p.write(va, Buffer.alloc(64 * KiB, 0x11));
    expect(k.stats().loanBreaks - breaks).toBe(16);
    remote.resume();
    await r0.done;
    await r.done;
    await so.close();
    expect((await echoed).bytes.subarray(4 * 1024 * KiB).equals(data)).toBe(true);
    p.exit();
    expectAtRest(k);
  });

  it('fork after a transfer: the child sees the bytes, and writes on either side stay their own', async () => {
    const k = scope.kernel();
    const data = pattern(32 * KiB, 9);
    const { so } = await received(k, data);
    const p = k.createProcess();
    const va = p.mmap(32 * KiB);
    await recvAll(so, p, va, 32 * KiB, 'transfer');
    const child = p.fork();
    await child.write(va, Buffer.from('child'));
    expect((await p.read(va, data.length)).equals(data)).toBe(true);
    expect((await child.read(va, 5)).toString()).toBe('child');
    k.checkInvariants();
    child.exit();
    p.exit();
    await so.close({ linger: 0 });
    expectAtRest(k);
  });

  it('each read starts a page: a recv stops at a read that would land mid-page, so the next starts aligned', async () => {
    const k = scope.kernel();
    const p0 = await pair(scope, k, () => {}, { recvChunkBytes: 64 * KiB, recvChunks: 4 });
    const first = pattern(10_000, 10);
    const second = pattern(8192, 11);
    p0.remote.write(first);
    await until(() => p0.so.recvQueued === 10_000, 'the first message');
    p0.remote.write(second);
    await until(() => p0.so.recvQueued === 18_192, 'the second message');
    const p = k.createProcess();
    const va = p.mmap(64 * KiB);
    expect(await p0.so.recv(p, va, 64 * KiB, { mode: 'transfer' })).toBe(10_000);
    /* the second read's bytes start a page: into the next page-aligned place, they move whole */
    expect(await p0.so.recv(p, va + 3 * PAGE_SIZE, 64 * KiB - 3 * PAGE_SIZE, { mode: 'transfer' })).toBe(
      8192,
    );
    expect((await p.read(va, 10_000)).equals(first)).toBe(true);
    expect((await p.read(va + 3 * PAGE_SIZE, 8192)).equals(second)).toBe(true);
    expect(p0.so.stats()).toMatchObject({ pagesTransferred: 4, receivedByCopy: 1808 });
    p.exit();
    await p0.so.close({ linger: 0 });
    expectAtRest(k);
  });

  it('refuses a bad mode with EINVAL, consuming nothing', async () => {
    const k = scope.kernel();
    const { so } = await received(k, pattern(100, 12));
    const p = k.createProcess();
    const va = p.mmap(PAGE_SIZE);
    for (const mode of ['move', 1, 'COPY']) {
      await expect(so.recv(p, va, 100, { mode } as never)).rejects.toMatchObject({ code: 'EINVAL' });
    }
    await expect(so.recv(p, va, 100, null as never)).rejects.toMatchObject({ code: 'EINVAL' });
    expect(so.recvQueued).toBe(100);
    p.exit();
    await so.close({ linger: 0 });
    expectAtRest(k);
  });
});
