import {
  KernelError,
  KernelPanic,
  PAGE_SIZE,
  uvmPageTransfer,
  uvmPglistAlloc,
  uvmPglistFree,
  type VmPage,
} from '@loanout/core';
import { afterEach, describe, expect, it } from 'vitest';
import { expectAtRest, expectError, Scope, settled } from '../test/helpers.js';
import { RecvBuffer, SendBuffer } from './sockbuf.js';

const scope = new Scope();
afterEach(() => scope.cleanup());

describe('SendBuffer (sbspace / sbwait)', () => {
  it('lets chunks in up to the high-water mark, and any chunk into an empty buffer', () => {
    const sb = new SendBuffer(1000);
    expect(sb.fits(5000)).toBe(true);
    sb.add(600);
    expect(sb.fits(400)).toBe(true);
    expect(sb.fits(401)).toBe(false);
    sb.add(400);
    expect(sb.cc).toBe(1000);
    expect(sb.fits(1)).toBe(false);
  });

  it('wakes a waiter once the host takes enough, in order, and nobody jumps the queue', async () => {
    const sb = new SendBuffer(1000);
    sb.add(900);
    const order: string[] = [];
    const a = sb.waitSpace(300).then(() => order.push('a'));
    const b = sb.waitSpace(100).then(() => order.push('b'));
    /* b would fit after a small drop, but a waits ahead of it; a newcomer must wait too */
    expect(sb.fits(50)).toBe(false);
    sb.drop(100);
    expect(await settled(a)).toBe(false);
    expect(await settled(b)).toBe(false);
    sb.drop(100);
    await a;
    await b;
    expect(order).toEqual(['a', 'b']);
    expect(sb.cc).toBe(700);
  });

  it('lets a chunk larger than the mark in once the buffer is empty', async () => {
    const sb = new SendBuffer(100);
    sb.add(100);
    const big = sb.waitSpace(1000);
    sb.drop(50);
    expect(await settled(big)).toBe(false);
    sb.drop(50);
    await big;
    expect(sb.cc).toBe(0);
  });

  it('refuses a high-water mark that is not a positive integer with EINVAL', async () => {
    for (const bad of [0, -1, 1.5, Number.NaN, Number.POSITIVE_INFINITY, '1', null]) {
      const err = await expectError(() => new SendBuffer(bad as never), 'EINVAL');
      expect(err.message).toMatch(/^sbreserve: /);
    }
  });

  it('abort rejects every waiter with the error given', async () => {
    const sb = new SendBuffer(10);
    sb.add(10);
    const w1 = sb.waitSpace(5);
    const w2 = sb.waitSpace(5);
    sb.abort(new KernelError('EPIPE', 'sosend: socket closed'));
    await expectError(w1, 'EPIPE');
    await expectError(w2, 'EPIPE');
    expect(sb.fits(5)).toBe(false);
    sb.drop(10);
    expect(sb.fits(5)).toBe(true);
  });
});

describe('RecvBuffer (the receive area Node reads into)', () => {
  it('is contiguous wired kernel memory, given back by release (once)', async () => {
    const k = scope.kernel({ physPages: 256 });
    const before = k.stats();
    const rb = await RecvBuffer.create(k, 2 * PAGE_SIZE, 3);
    expect(k.stats().wiredPages).toBe(before.wiredPages + 6);
    expect(k.stats().freePages).toBe(before.freePages - 6);
    expect(rb.chunkBytes).toBe(2 * PAGE_SIZE);
    k.checkInvariants();
    rb.release();
    rb.release();
    expect(rb.released).toBe(true);
    expect(k.stats().wiredPages).toBe(before.wiredPages);
    expect(k.stats().freePages).toBe(before.freePages);
    expectAtRest(k);
  });

  it('refuses chunks that are not page multiples, fewer than two chunks, and runs it cannot find', async () => {
    const k = scope.kernel({ physPages: 64 });
    await expectError(RecvBuffer.create(k, 1000, 2), 'EINVAL');
    await expectError(RecvBuffer.create(k, PAGE_SIZE + 1, 2), 'EINVAL');
    await expectError(RecvBuffer.create(k, 0, 2), 'EINVAL');
    await expectError(RecvBuffer.create(k, PAGE_SIZE, 1), 'EINVAL');
    await expectError(RecvBuffer.create(k, PAGE_SIZE, 2.5), 'EINVAL');
    const held = await RecvBuffer.create(k, 16 * PAGE_SIZE, 2);
    /* 32 of 64 pages are held: no run of 40 is left */
    await expectError(RecvBuffer.create(k, 20 * PAGE_SIZE, 2), 'ENOMEM');
    held.release();
    expectAtRest(k);
  });

  it('refuses an area larger than the kernel RAM with EINVAL (it could never be had), and a non-kernel', async () => {
    const k = scope.kernel({ physPages: 64 });
    for (const [bytes, chunks] of [
      [PAGE_SIZE, 2 ** 40],
      [2 ** 40, 2],
      [32 * PAGE_SIZE, 3],
    ]) {
      const err = await expectError(RecvBuffer.create(k, bytes, chunks), 'EINVAL');
      expect(err.message).toMatch(/^soreserve: /);
    }
    await expectError(RecvBuffer.create({} as never, PAGE_SIZE, 2), 'EINVAL');
    /* the whole RAM is not too large in itself: it is just not free (ENOMEM) once anything is taken */
    const held = await RecvBuffer.create(k, PAGE_SIZE, 2);
    await expectError(RecvBuffer.create(k, 32 * PAGE_SIZE, 2), 'ENOMEM');
    held.release();
    expectAtRest(k);
  });

  it('reads append to a chunk until it is full, each from a page boundary; reading pauses while one more chunk is needed to re-arm', async () => {
    const k = scope.kernel({ physPages: 64 });
    const rb = await RecvBuffer.create(k, 2 * PAGE_SIZE, 3);
    const ram = k.uvm.ram.buffer;
    const a = rb.arm();
    expect(a.buffer).toBe(ram);
    expect(a.length).toBe(2 * PAGE_SIZE);
    a.write('hello');
    expect(rb.filled(5, a)).toBe(true);
    /* the read ended mid-page: the next one goes to the next page of the same chunk */
    const b = rb.arm();
    expect(b.byteOffset).toBe(a.byteOffset + PAGE_SIZE);
    expect(b.length).toBe(PAGE_SIZE);
    b.write('world!');
    expect(rb.filled(6, b)).toBe(true);
    /* the head is one read's bytes at a time */
    expect(rb.headRun).toBe(5);
    expect(rb.head(100)?.toString()).toBe('hello');
    /* that chunk is full (its second page closed after 'world!'): the next arm takes a new one */
    const c = rb.arm();
    expect(c.byteOffset).not.toBe(a.byteOffset);
    expect(c.length).toBe(2 * PAGE_SIZE);
    /* c filled too: one chunk left free -- Node may arm it, but must then stop reading */
    expect(rb.filled(c.length, c)).toBe(false);
    const d = rb.arm();
    expect(rb.canResume).toBe(false);
    expect(() => rb.filled(d.length, d)).not.toThrow();
    expect(() => rb.arm()).toThrow(KernelPanic);
    expect(rb.cc).toBe(11 + 4 * PAGE_SIZE);

    expect(rb.head(3)?.toString()).toBe('hel');
    expect(rb.consume(3)).toBe(false);
    expect(rb.head(100)?.toString()).toBe('lo');
    /* the rest of the page after a read's end is skipped */
    expect(rb.consume(2)).toBe(false);
    expect(rb.headOffset).toBe(PAGE_SIZE);
    expect(rb.head(100)?.toString()).toBe('world!');
    expect(rb.consume(6)).toBe(true);
    /* one chunk free and none being filled: not yet -- resuming asks what going on asks (two) */
    expect(rb.canResume).toBe(false);
    expect(rb.consume(2 * PAGE_SIZE)).toBe(true);
    expect(rb.canResume).toBe(true);
    expect(rb.consume(2 * PAGE_SIZE)).toBe(true);
    expect(rb.empty).toBe(true);
    expect(rb.head(1)).toBeNull();
    expect(rb.cc).toBe(0);
    rb.release();
    expect(rb.canResume).toBe(false);
    expectAtRest(k);
  });

  it('a chunk read empty while it is still being filled stays, and the next read goes on after it, a page on', async () => {
    const k = scope.kernel({ physPages: 64 });
    const rb = await RecvBuffer.create(k, 2 * PAGE_SIZE, 2);
    const a = rb.arm();
    a.write('abc');
    rb.filled(3, a);
    expect(rb.consume(3)).toBe(false);
    expect(rb.empty).toBe(true);
    expect(rb.head(10)).toBeNull();
    const b = rb.arm();
    expect(b.byteOffset).toBe(a.byteOffset + PAGE_SIZE);
    b.write('def');
    rb.filled(3, b);
    expect(rb.head(10)?.toString()).toBe('def');
    expect(rb.headOffset).toBe(PAGE_SIZE);
    rb.release();
    expectAtRest(k);
  });

  it('give: a read whose last page is partly filled can give that page too, the rest of it zeroed; it skips the hole', async () => {
    const k = scope.kernel({ physPages: 64 });
    const rb = await RecvBuffer.create(k, 4 * PAGE_SIZE, 2);
    const p = k.createProcess();
    const va = p.mmap(4 * PAGE_SIZE);
    await p.write(va, Buffer.alloc(4 * PAGE_SIZE, 7));
    const a = rb.arm();
    /* stale bytes in the area: they must not reach the process */
    a.fill(0xee);
    const n = PAGE_SIZE + 10;
    a.fill(1, 0, n);
    rb.filled(n, a);
    const b = rb.arm();
    b.fill(2, 0, 5);
    rb.filled(5, b);
    /* only a tail that ends the read may go, and only as the last of the pages */
    expect(() => rb.give(2, () => undefined, 9)).toThrow(KernelPanic);
    expect(() => rb.give(1, () => undefined, 10)).toThrow(KernelPanic);
    expect(rb.give(2, (pages) => uvmPageTransfer(p.map, va, pages), 10)).toBe(true);
    k.checkInvariants();
    const got = Buffer.from(await p.read(va, 2 * PAGE_SIZE));
    expect(got.subarray(0, n).every((x) => x === 1)).toBe(true);
    expect(got.subarray(n).every((x) => x === 0)).toBe(true);
    /* the next read's bytes are the head now, a page on */
    expect(rb.cc).toBe(5);
    expect(rb.headOffset).toBe(2 * PAGE_SIZE);
    expect(rb.head(10)).toEqual(Buffer.alloc(5, 2));
    p.exit();
    rb.release();
    expectAtRest(k);
  });

  it('give: a receive loop into one buffer reads into the same two runs again and again (the pages it just freed)', async () => {
    const k = scope.kernel({ physPages: 256 });
    const rb = await RecvBuffer.create(k, 16 * PAGE_SIZE, 4);
    const p = k.createProcess();
    const va = p.mmap(16 * PAGE_SIZE);
    await p.write(va, Buffer.alloc(16 * PAGE_SIZE, 1));
    const armedAt: number[] = [];
    for (let i = 0; i < 8; i++) {
      const b = rb.arm();
      armedAt.push(b.byteOffset / PAGE_SIZE);
      rb.filled(b.length, b);
      expect(rb.give(16, (pages) => uvmPageTransfer(p.map, va, pages))).toBe(true);
      k.checkInvariants();
    }
    /* after the first, each read lands in the run the previous transfer took from the buffer */
    expect(new Set(armedAt.slice(1)).size).toBe(2);
    expect(armedAt[3]).toBe(armedAt[1]);
    p.exit();
    rb.release();
    expectAtRest(k);
  });

  it('give: takes its fresh run before anything goes when only a run across blocks is left; none at all, it takes nothing', async () => {
    const k = scope.kernel({ physPages: 64 });
    const rb = await RecvBuffer.create(k, 16 * PAGE_SIZE, 2);
    const p = k.createProcess();
    const va = p.mmap(16 * PAGE_SIZE);
    /* every other page held: then free 16 that straddle two aligned blocks of 16 (no block of 16 is free) */
    const held: VmPage[] = [];
    for (let run = uvmPglistAlloc(k.uvm, 1); run !== null; run = uvmPglistAlloc(k.uvm, 1)) held.push(run[0]);
    const b = rb.arm();
    rb.filled(b.length, b);
    const none: VmPage[][] = [];
    expect(rb.give(16, (pages) => none.push(pages))).toBe(false);
    expect(none).toEqual([]);
    const straddle = held.filter((pg) => pg.frame % 32 >= 8 && pg.frame % 32 < 24).slice(0, 16);
    expect(straddle.map((pg) => pg.frame % 32)).toEqual([...Array(16).keys()].map((i) => i + 8));
    uvmPglistFree(straddle);
    expect(rb.give(16, (pages) => uvmPageTransfer(p.map, va, pages))).toBe(true);
    expect(k.stats().freePages).toBe(0);
    k.checkInvariants();
    uvmPglistFree(held.filter((pg) => !straddle.includes(pg)));
    p.exit();
    rb.release();
    expectAtRest(k);
  });

  it('panics when a read lands outside the armed chunk', async () => {
    const k = scope.kernel({ physPages: 64 });
    const rb = await RecvBuffer.create(k, PAGE_SIZE, 2);
    const armed = rb.arm();
    expect(() => rb.filled(1, Buffer.alloc(PAGE_SIZE))).toThrow(KernelPanic);
    rb.filled(1, armed);
    expect(() => rb.filled(1, armed)).toThrow(KernelPanic);
    rb.release();
    expectAtRest(k);
  });
});
