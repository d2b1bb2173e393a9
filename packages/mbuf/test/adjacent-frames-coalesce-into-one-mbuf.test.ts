/*
 * A loaned chain has one mbuf per run of physically adjacent frames, not one per page: user pages that
 * sit in consecutive frames become one view of RAM (fewer buffers for the network to gather).
 */
import { Kernel, PAGE_SIZE, type Proc } from '@loanout/core';
import { describe, expect, it } from 'vitest';
import { type Mbuf, mBuffers, mbufLoan, mCopydata, mFreem, mLength } from '../src/index.js';
import { chainBytes, pattern } from './helpers.js';

function frames(p: Proc, va: number, npages: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < npages; i++) out.push(p.map.pmap.extract(va / PAGE_SIZE + i));
  return out;
}

function lens(m: Mbuf): number[] {
  const out: number[] = [];
  for (let x: Mbuf | null = m; x !== null; x = x.next) out.push(x.len);
  return out;
}

/* fill page i of [va, +npages) in the given order, with pattern bytes of the whole range */
async function fill(p: Proc, va: number, order: number[], bytes: Buffer): Promise<void> {
  for (const i of order)
    await p.write(va + i * PAGE_SIZE, bytes.subarray(i * PAGE_SIZE, (i + 1) * PAGE_SIZE));
}

describe('coalescing', () => {
  it('pages in consecutive frames become one mbuf, one view', async () => {
    const k = new Kernel({ physPages: 128, swapPages: 0 });
    const p = k.createProcess();
    const va = p.mmap(8 * PAGE_SIZE);
    const bytes = pattern(8 * PAGE_SIZE, 31);
    await fill(p, va, [0, 1, 2, 3, 4, 5, 6, 7], bytes);
    const f = frames(p, va, 8);
    for (let i = 1; i < 8; i++) expect(f[i]).toBe(f[0] + i);
    const m = await mbufLoan(p, va + 5, 8 * PAGE_SIZE - 10);
    expect(lens(m)).toEqual([8 * PAGE_SIZE - 10]);
    const views = mBuffers(m);
    expect(views.length).toBe(1);
    expect(views[0].byteOffset).toBe(f[0] * PAGE_SIZE + 5);
    expect(chainBytes(m).equals(bytes.subarray(5, 8 * PAGE_SIZE - 5))).toBe(true);
    expect(mCopydata(m, PAGE_SIZE - 10, 20).equals(bytes.subarray(PAGE_SIZE - 5, PAGE_SIZE + 15))).toBe(true);
    mFreem(m);
  });

  it('pages in descending frames get one mbuf each', async () => {
    const k = new Kernel({ physPages: 128, swapPages: 0 });
    const p = k.createProcess();
    const va = p.mmap(4 * PAGE_SIZE);
    const bytes = pattern(4 * PAGE_SIZE, 32);
    await fill(p, va, [3, 2, 1, 0], bytes);
    const m = await mbufLoan(p, va, 4 * PAGE_SIZE);
    expect(lens(m)).toEqual([PAGE_SIZE, PAGE_SIZE, PAGE_SIZE, PAGE_SIZE]);
    expect(mBuffers(m).length).toBe(4);
    expect(chainBytes(m).equals(bytes)).toBe(true);
    mFreem(m);
  });

  it('runs split where adjacency breaks: fewer mbufs than pages, each view over its run', async () => {
    const k = new Kernel({ physPages: 128, swapPages: 0 });
    const p = k.createProcess();
    const va = p.mmap(6 * PAGE_SIZE);
    const other = p.mmap(PAGE_SIZE);
    const bytes = pattern(6 * PAGE_SIZE, 33);
    await fill(p, va, [0, 1, 2], bytes);
    await p.write(other, Buffer.from('a page in between'));
    await fill(p, va, [3, 4, 5], bytes);
    const f = frames(p, va, 6);
    expect(f[3]).not.toBe(f[2] + 1);
    const m = await mbufLoan(p, va + 1, 6 * PAGE_SIZE - 1);
    expect(lens(m)).toEqual([3 * PAGE_SIZE - 1, 3 * PAGE_SIZE]);
    const views = mBuffers(m);
    expect(views.map((v) => v.byteOffset)).toEqual([f[0] * PAGE_SIZE + 1, f[3] * PAGE_SIZE]);
    expect(chainBytes(m).equals(bytes.subarray(1))).toBe(true);
    expect(mLength(m)).toBe(6 * PAGE_SIZE - 1);
    mFreem(m);
    k.checkInvariants();
  });

  it('interleaved memory of two regions never coalesces', async () => {
    const k = new Kernel({ physPages: 128, swapPages: 0 });
    const p = k.createProcess();
    const a = p.mmap(4 * PAGE_SIZE);
    const b = p.mmap(4 * PAGE_SIZE);
    const ba = pattern(4 * PAGE_SIZE, 34);
    const bb = pattern(4 * PAGE_SIZE, 35);
    for (let i = 0; i < 4; i++) {
      await fill(p, a, [i], ba);
      await fill(p, b, [i], bb);
    }
    const ma = await mbufLoan(p, a + 3, 4 * PAGE_SIZE - 3);
    const mb = await mbufLoan(p, b, 3 * PAGE_SIZE + 3);
    expect(mBuffers(ma).length).toBe(4);
    expect(mBuffers(mb).length).toBe(4);
    expect(chainBytes(ma).equals(ba.subarray(3))).toBe(true);
    expect(chainBytes(mb).equals(bb.subarray(0, 3 * PAGE_SIZE + 3))).toBe(true);
    mFreem(ma);
    mFreem(mb);
  });

  it('the same zero page loaned for several pages is not coalesced with itself', async () => {
    const k = new Kernel({ physPages: 64, swapPages: 0 });
    const p = k.createProcess();
    const va = p.mmap(3 * PAGE_SIZE);
    const m = await mbufLoan(p, va, 3 * PAGE_SIZE);
    expect(lens(m)).toEqual([PAGE_SIZE, PAGE_SIZE, PAGE_SIZE]);
    expect(chainBytes(m).equals(Buffer.alloc(3 * PAGE_SIZE))).toBe(true);
    mFreem(m);
    k.checkInvariants();
  });
});
