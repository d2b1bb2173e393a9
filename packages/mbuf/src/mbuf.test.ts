import { Kernel, PAGE_SIZE, type Proc } from '@loanout/core';
import { describe, expect, it } from 'vitest';
import { chainBytes, counters, expectError, expectPanic, pattern, userMemory } from '../test/helpers.js';
import {
  M_EXT,
  M_EXT_CLUSTER,
  M_EXT_PAGES,
  M_EXT_ROMAP,
  M_PKTHDR,
  MCLBYTES,
  mAdj,
  mBuffers,
  mbufCopyin,
  mbufLoan,
  mCat,
  mCopyback,
  mCopydata,
  mFree,
  mFreem,
  mLength,
} from './index.js';
import { Mbuf } from './mbuf.js';

const SEED = 7;

async function setup(npages = 4): Promise<{ k: Kernel; p: Proc; va: number; bytes: Buffer }> {
  const k = new Kernel({ physPages: 256, swapPages: 0 });
  const p = k.createProcess();
  const va = await userMemory(p, npages, SEED);
  return { k, p, va, bytes: pattern(npages * PAGE_SIZE, SEED) };
}

function mbufs(m: Mbuf): Mbuf[] {
  const out: Mbuf[] = [];
  for (let x: Mbuf | null = m; x !== null; x = x.next) out.push(x);
  return out;
}

describe('Mbuf', () => {
  it('a cluster chain: M_EXT|M_EXT_CLUSTER mbufs of 2 KiB, the head with the packet header', async () => {
    const { p, va } = await setup();
    const m = await mbufCopyin(p, va, 2 * MCLBYTES + 5);
    const all = mbufs(m);
    expect(all.map((x) => x.len)).toEqual([MCLBYTES, MCLBYTES, 5]);
    expect(all.every((x) => x.flags & M_EXT && x.flags & M_EXT_CLUSTER)).toBe(true);
    expect(all.some((x) => x.flags & M_EXT_PAGES || x.flags & M_EXT_ROMAP)).toBe(false);
    expect(all.map((x) => (x.flags & M_PKTHDR) !== 0)).toEqual([true, false, false]);
    expect(m.pkthdrLen).toBe(2 * MCLBYTES + 5);
    expect(m.isLoaned).toBe(false);
    mFreem(m);
  });

  it('a loaned chain: M_EXT|M_EXT_PAGES|M_EXT_ROMAP mbufs, the head with the packet header', async () => {
    const { p, va } = await setup();
    const m = await mbufLoan(p, va + 100, PAGE_SIZE);
    expect(m.flags & (M_EXT | M_EXT_PAGES | M_EXT_ROMAP | M_PKTHDR)).toBe(
      M_EXT | M_EXT_PAGES | M_EXT_ROMAP | M_PKTHDR,
    );
    expect(m.flags & M_EXT_CLUSTER).toBe(0);
    expect(m.isLoaned).toBe(true);
    expect(m.pkthdrLen).toBe(PAGE_SIZE);
    mFreem(m);
  });
});

describe('mLength / mBuffers', () => {
  it('mLength sums the mbufs; mBuffers are their views, in order, with the chain bytes', async () => {
    const { p, va, bytes } = await setup();
    const m = await mbufCopyin(p, va + 1, 5000);
    expect(mLength(m)).toBe(5000);
    const views = mBuffers(m);
    expect(views.length).toBe(3);
    expect(views.every((v) => v.buffer === p.kernel.uvm.ram.buffer)).toBe(true);
    expect(Buffer.concat(views).equals(bytes.subarray(1, 5001))).toBe(true);
    mFreem(m);
  });

  it('mBuffers leaves out mbufs emptied by mAdj', async () => {
    const { p, va, bytes } = await setup();
    const m = await mbufCopyin(p, va, 2 * MCLBYTES + 10);
    mAdj(m, MCLBYTES);
    expect(mBuffers(m).length).toBe(2);
    expect(chainBytes(m).equals(bytes.subarray(MCLBYTES, 2 * MCLBYTES + 10))).toBe(true);
    mFreem(m);
  });
});

describe('mCopydata', () => {
  it('copies any span out of a chain, across mbuf boundaries, through the kernel mapping', async () => {
    const { p, va, bytes } = await setup();
    const c = await mbufCopyin(p, va + 3, 3 * PAGE_SIZE);
    const l = await mbufLoan(p, va + 3, 3 * PAGE_SIZE);
    const want = bytes.subarray(3, 3 + 3 * PAGE_SIZE);
    for (const m of [c, l]) {
      for (const [off, n] of [
        [0, 3 * PAGE_SIZE],
        [MCLBYTES - 1, 2],
        [PAGE_SIZE - 10, PAGE_SIZE + 20],
        [3 * PAGE_SIZE - 1, 1],
        [3 * PAGE_SIZE, 0],
        [17, 0],
      ]) {
        expect(mCopydata(m, off, n).equals(want.subarray(off, off + n))).toBe(true);
      }
    }
    mFreem(c);
    mFreem(l);
  });

  it('returns a copy: changing it does not change the chain', async () => {
    const { p, va, bytes } = await setup();
    const m = await mbufCopyin(p, va, 100);
    mCopydata(m, 0, 100).fill(0);
    expect(mCopydata(m, 0, 100).equals(bytes.subarray(0, 100))).toBe(true);
    mFreem(m);
  });

  it('is EINVAL for a span not inside the chain', async () => {
    const { p, va } = await setup();
    const m = await mbufCopyin(p, va, 100);
    for (const [off, n] of [
      [0, 101],
      [100, 1],
      [-1, 1],
      [0, -1],
      [1.5, 1],
      [0, Number.NaN],
      [Number.NaN, 0],
      [0, Number.POSITIVE_INFINITY],
    ]) {
      await expectError(() => mCopydata(m, off, n), 'EINVAL');
    }
    mFreem(m);
  });
});

describe('mCopyback', () => {
  it('writes into a cluster chain through the kernel mapping, across clusters', async () => {
    const { p, va, bytes } = await setup();
    const m = await mbufCopyin(p, va, 3 * MCLBYTES);
    const patch = Buffer.alloc(MCLBYTES + 2, 0xee);
    mCopyback(m, MCLBYTES - 1, patch);
    const want = Buffer.from(bytes.subarray(0, 3 * MCLBYTES));
    patch.copy(want, MCLBYTES - 1);
    expect(mCopydata(m, 0, 3 * MCLBYTES).equals(want)).toBe(true);
    expect(chainBytes(m).equals(want)).toBe(true);
    expect((await p.read(va, 3 * MCLBYTES)).equals(bytes.subarray(0, 3 * MCLBYTES))).toBe(true);
    mFreem(m);
  });

  it('into a loaned chain is a kernel fault (KernelPanic): nothing is written', async () => {
    const { k, p, va, bytes } = await setup();
    const m = await mbufLoan(p, va + 1, 100);
    expectPanic(() => mCopyback(m, 0, Buffer.from('x')), /read-only/);
    expect(chainBytes(m).equals(bytes.subarray(1, 101))).toBe(true);
    mFreem(m);
    k.checkInvariants();
  });

  it('is EINVAL when the bytes do not fit', async () => {
    const { p, va } = await setup();
    const m = await mbufCopyin(p, va, 10);
    await expectError(() => mCopyback(m, 5, Buffer.alloc(6)), 'EINVAL');
    await expectError(() => mCopyback(m, -1, Buffer.alloc(1)), 'EINVAL');
    await expectError(() => mCopyback(m, 0, 'text' as never), 'EINVAL');
    await expectError(() => mCopyback(m, 0, [1, 2] as never), 'EINVAL');
    expect(mLength(m)).toBe(10);
    mFreem(m);
  });
});

describe('mAdj', () => {
  it('trims the head across mbufs; the packet header length follows', async () => {
    const { p, va, bytes } = await setup();
    const m = await mbufCopyin(p, va, 3 * MCLBYTES);
    mAdj(m, MCLBYTES + 7);
    expect(mLength(m)).toBe(2 * MCLBYTES - 7);
    expect(m.pkthdrLen).toBe(2 * MCLBYTES - 7);
    expect(mbufs(m).map((x) => x.len)).toEqual([0, MCLBYTES - 7, MCLBYTES]);
    expect(mCopydata(m, 0, 2 * MCLBYTES - 7).equals(bytes.subarray(MCLBYTES + 7, 3 * MCLBYTES))).toBe(true);
    expect(chainBytes(m).equals(bytes.subarray(MCLBYTES + 7, 3 * MCLBYTES))).toBe(true);
    mFreem(m);
  });

  it('trims the tail with a negative count', async () => {
    const { p, va, bytes } = await setup();
    const m = await mbufLoan(p, va + 5, 2 * PAGE_SIZE);
    mAdj(m, -(PAGE_SIZE + 1));
    expect(mLength(m)).toBe(PAGE_SIZE - 1);
    expect(m.pkthdrLen).toBe(PAGE_SIZE - 1);
    expect(chainBytes(m).equals(bytes.subarray(5, 5 + PAGE_SIZE - 1))).toBe(true);
    expect(mCopydata(m, 0, PAGE_SIZE - 1).equals(bytes.subarray(5, 4 + PAGE_SIZE))).toBe(true);
    mFreem(m);
  });

  it('can empty a chain; more than its length or a non-integer is EINVAL', async () => {
    const { p, va } = await setup();
    const m = await mbufCopyin(p, va, 50);
    await expectError(() => mAdj(m, 51), 'EINVAL');
    await expectError(() => mAdj(m, -51), 'EINVAL');
    await expectError(() => mAdj(m, 0.5), 'EINVAL');
    await expectError(() => mAdj(m, Number.NaN), 'EINVAL');
    expect(mLength(m)).toBe(50);
    mAdj(m, 0);
    mAdj(m, 50);
    expect(mLength(m)).toBe(0);
    expect(m.pkthdrLen).toBe(0);
    expect(mBuffers(m)).toEqual([]);
    mFreem(m);
  });
});

describe('mCat', () => {
  it('appends a chain: one packet header, the lengths add up, the bytes follow in order', async () => {
    const { k, p, va, bytes } = await setup();
    const a = await mbufCopyin(p, va, 10);
    const b = await mbufLoan(p, va + PAGE_SIZE - 3, 6);
    mCat(a, b);
    expect(mLength(a)).toBe(16);
    expect(a.pkthdrLen).toBe(16);
    expect(b.flags & M_PKTHDR).toBe(0);
    expect(
      chainBytes(a).equals(
        Buffer.concat([bytes.subarray(0, 10), bytes.subarray(PAGE_SIZE - 3, PAGE_SIZE + 3)]),
      ),
    ).toBe(true);
    mFreem(a);
    expect(counters(k).loanedPages).toBe(0);
    expect(counters(k).clustersInUse).toBe(0);
    k.checkInvariants();
  });

  it('refuses chains that share an mbuf (EINVAL): a loop would never end', async () => {
    const { p, va } = await setup();
    const a = await mbufCopyin(p, va, 3 * MCLBYTES);
    const b = await mbufCopyin(p, va, 10);
    await expectError(() => mCat(a, a), 'EINVAL');
    await expectError(() => mCat(a, a.next!), 'EINVAL');
    mCat(a, b);
    await expectError(() => mCat(b, a), 'EINVAL');
    expect(mLength(a)).toBe(3 * MCLBYTES + 10);
    mFreem(a);
  });
});

describe('mCat refuses what would corrupt a chain, before changing anything', () => {
  it('a chain inside another chain (a shared tail): EINVAL; both chains free cleanly after', async () => {
    const { k, p, va } = await setup();
    const a = await mbufCopyin(p, va, 10);
    const b = await mbufCopyin(p, va, 3 * MCLBYTES);
    const before = counters(k);
    await expectError(() => mCat(a, b.next!), 'EINVAL');
    await expectError(() => mCat(a, b.next!.next!), 'EINVAL');
    expect(mLength(a)).toBe(10);
    expect(a.pkthdrLen).toBe(10);
    expect(a.next).toBe(null);
    expect(counters(k)).toEqual(before);
    mFreem(a);
    mFreem(b);
    expect(counters(k).clustersInUse).toBe(0);
    k.checkInvariants();
  });

  it('a chain already appended to another: EINVAL (it would be freed twice)', async () => {
    const { k, p, va } = await setup();
    const a = await mbufCopyin(p, va, 10);
    const b = await mbufLoan(p, va, 10);
    const c = await mbufCopyin(p, va, 10);
    mCat(a, b);
    await expectError(() => mCat(c, b), 'EINVAL');
    expect(mLength(c)).toBe(10);
    mFreem(a);
    mFreem(c);
    expect(counters(k).loanedPages).toBe(0);
    expect(counters(k).clustersInUse).toBe(0);
    k.checkInvariants();
  });

  it("another kernel's chain: EINVAL", async () => {
    const { k, p, va } = await setup();
    const other = await setup();
    const a = await mbufCopyin(p, va, 10);
    const b = await mbufCopyin(other.p, other.va, 10);
    await expectError(() => mCat(a, b), 'EINVAL');
    await expectError(() => mCat(b, a), 'EINVAL');
    expect(mLength(a)).toBe(10);
    expect(b.flags & M_PKTHDR).toBe(M_PKTHDR);
    mFreem(a);
    mFreem(b);
    k.checkInvariants();
    other.k.checkInvariants();
  });

  it('a freed chain, or one holding a freed mbuf, on either side: a panic, and nothing is linked', async () => {
    const { k, p, va } = await setup();
    const a = await mbufCopyin(p, va, 10);
    const gone = await mbufCopyin(p, va, 10);
    mFreem(gone);
    expectPanic(() => mCat(a, gone), /used after free/);
    expectPanic(() => mCat(gone, a), /used after free/);
    const holed = await mbufCopyin(p, va, 2 * MCLBYTES);
    const tail = holed.next!;
    mFree(tail);
    expectPanic(() => mCat(a, holed), /freed mbuf/);
    expectPanic(() => mCat(holed, a), /freed mbuf/);
    expect(a.next).toBe(null);
    expect(holed.next).toBe(tail);
    expect(mLength(a)).toBe(10);
    holed.next = null;
    mFreem(holed);
    mFreem(a);
    expect(counters(k).clustersInUse).toBe(0);
    k.checkInvariants();
  });
});

describe('a chain holding an mbuf freed on its own', () => {
  it('every walk of it panics, and mFreem frees nothing (the misuse is reported, not half done)', async () => {
    const { k, p, va } = await setup();
    const c = await mbufCopyin(p, va, 3 * MCLBYTES);
    const [, second, third] = mbufs(c);
    mFree(second);
    expect(third.linked).toBe(false);
    const before = counters(k);
    expect(before.clustersInUse).toBe(2);
    expectPanic(() => mLength(c), /freed mbuf/);
    expectPanic(() => mBuffers(c), /freed mbuf/);
    expectPanic(() => mCopydata(c, 0, 1), /freed mbuf/);
    expectPanic(() => mCopyback(c, 0, Buffer.alloc(1)), /freed mbuf/);
    expectPanic(() => mAdj(c, 1), /freed mbuf/);
    expectPanic(() => mAdj(c, -1), /freed mbuf/);
    expectPanic(() => mFreem(c), /m_freem: .*freed mbuf/);
    expect(c.freed).toBe(false);
    expect(counters(k)).toEqual(before);
    k.checkInvariants();
    /* the mbuf after the freed one heads a chain of its own; the head, unlinked, frees alone */
    expect(mLength(third)).toBe(MCLBYTES);
    c.next = null;
    mFreem(c);
    mFreem(third);
    expect(counters(k).clustersInUse).toBe(0);
    k.checkInvariants();
  });

  it('after mFree of the head, the rest of the chain can be appended and freed as a chain', async () => {
    const { k, p, va, bytes } = await setup();
    const c = await mbufCopyin(p, va, 2 * MCLBYTES);
    const rest = c.next!;
    mFree(c);
    const a = await mbufCopyin(p, va, 10);
    mCat(a, rest);
    expect(
      chainBytes(a).equals(Buffer.concat([bytes.subarray(0, 10), bytes.subarray(MCLBYTES, 2 * MCLBYTES)])),
    ).toBe(true);
    mFreem(a);
    expect(counters(k).clustersInUse).toBe(0);
    k.checkInvariants();
  });
});

describe('mFree / mFreem', () => {
  it('an mbuf of a loaned chain keeps the pages until the last mbuf of the chain is freed', async () => {
    const { k, p } = await setup(1);
    /* touched last page first: frames in descending order, so two mbufs sharing one loan */
    const va = p.mmap(2 * PAGE_SIZE);
    await p.write(va + PAGE_SIZE, Buffer.from('second'));
    await p.write(va, Buffer.from('first'));
    const m = await mbufLoan(p, va, 2 * PAGE_SIZE);
    const [first, second] = mbufs(m);
    expect(second).toBeDefined();
    mFree(first);
    expect(counters(k).loanedPages).toBe(2);
    expect(counters(k).kvaPagesInUse).toBe(2);
    expect(second.view.subarray(0, 6).toString()).toBe('second');
    mFree(second);
    expect(counters(k).loanedPages).toBe(0);
    expect(counters(k).kvaPagesInUse).toBe(0);
    k.checkInvariants();
  });

  it('freeing a chain twice panics; so does using it after free', async () => {
    const { k, p, va } = await setup();
    const c = await mbufCopyin(p, va, 3 * MCLBYTES);
    const l = await mbufLoan(p, va, 3 * PAGE_SIZE);
    mFreem(c);
    mFreem(l);
    const before = counters(k);
    expectPanic(() => mFreem(c), /freed twice/);
    expectPanic(() => mFreem(l), /freed twice/);
    expectPanic(() => mFree(l), /freed twice/);
    expectPanic(() => mLength(c), /after free/);
    expectPanic(() => mBuffers(l), /after free/);
    expectPanic(() => mCopydata(l, 0, 1), /after free/);
    expectPanic(() => mCopyback(c, 0, Buffer.alloc(1)), /after free/);
    expectPanic(() => mAdj(c, 1), /after free/);
    expect(counters(k)).toEqual(before);
    k.checkInvariants();
  });

  it('every chain operation refuses what is not an mbuf (EINVAL)', async () => {
    for (const bad of [null, undefined, 42, {}, { next: null, len: 0 }]) {
      const x = bad as unknown as Mbuf;
      await expectError(() => mFreem(x), 'EINVAL');
      await expectError(() => mFree(x), 'EINVAL');
      await expectError(() => mLength(x), 'EINVAL');
      await expectError(() => mBuffers(x), 'EINVAL');
      await expectError(() => mCopydata(x, 0, 0), 'EINVAL');
      await expectError(() => mCopyback(x, 0, Buffer.alloc(0)), 'EINVAL');
      await expectError(() => mAdj(x, 0), 'EINVAL');
      await expectError(() => mCat(x, x), 'EINVAL');
    }
  });

  it('a count or offset that is a Symbol, a BigInt or an object is EINVAL, not a TypeError', async () => {
    const { k, p, va } = await setup();
    const m = await mbufCopyin(p, va, 100);
    const before = counters(k);
    for (const bad of [Symbol('n'), 4n, {}, '4']) {
      const x = bad as unknown as number;
      await expectError(() => mAdj(m, x), 'EINVAL');
      await expectError(() => mCopydata(m, x, 1), 'EINVAL');
      await expectError(() => mCopydata(m, 0, x), 'EINVAL');
      await expectError(() => mCopyback(m, x, Buffer.alloc(1)), 'EINVAL');
    }
    expect(mLength(m)).toBe(100);
    expect(counters(k)).toEqual(before);
    mFreem(m);
    k.checkInvariants();
  });

  it('an mbuf on storage of its own (MbufExt) releases it when its last reference goes', () => {
    const k = new Kernel({ physPages: 4, swapPages: 0 });
    let released = 0;
    const ext = { refs: 2, release: () => released++ };
    const view = Buffer.alloc(8);
    const a = new Mbuf(k, M_EXT, view, 0, ext);
    const b = new Mbuf(k, M_EXT, view.subarray(0, 4), 0, ext);
    expect(a.len).toBe(8);
    expect(b.len).toBe(4);
    mFree(a);
    expect(released).toBe(0);
    mFree(b);
    expect(released).toBe(1);
  });
});
