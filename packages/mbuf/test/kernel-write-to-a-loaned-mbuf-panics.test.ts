/*
 * Loaned pages are entered read-only in kernel space (M_EXT_ROMAP): a kernel write through that mapping
 * (mCopyback) is a fatal fault, never a silent copy -- there is no owner to copy for. Clusters are the
 * kernel's own memory and take writes. A write that goes around the MMU -- through the raw Buffer
 * views the socket layer hands to node:net -- cannot be stopped, but it is caught: a kernel booted
 * with `diagnostic` (the test suite sets LOANOUT_DIAGNOSTIC=1) panics when the loan is given back,
 * naming the frame and its owner, as a NetBSD DIAGNOSTIC kernel would.
 */
import { Kernel, KernelPanic, PAGE_SIZE } from '@loanout/core';
import { describe, expect, it } from 'vitest';
import {
  MCLBYTES,
  mBuffers,
  mbufCopyin,
  mbufLoan,
  mCat,
  mCopyback,
  mCopydata,
  mFreem,
} from '../src/index.js';
import { chainBytes, counters, expectPanic, pattern, userMemory } from './helpers.js';

async function setup() {
  const k = new Kernel({ physPages: 128, swapPages: 0 });
  const p = k.createProcess();
  const va = await userMemory(p, 3, 61);
  return { k, p, va, bytes: pattern(3 * PAGE_SIZE, 61) };
}

describe('kernel writes into mbufs', () => {
  it('mCopyback into a loaned chain panics; chain, user memory and loans are untouched', async () => {
    const { k, p, va, bytes } = await setup();
    const m = await mbufLoan(p, va + 5, 2 * PAGE_SIZE);
    const before = counters(k);
    for (const off of [0, 1, PAGE_SIZE - 5, 2 * PAGE_SIZE - 1]) {
      expectPanic(() => mCopyback(m, off, Buffer.from('Z')), /kernel page fault: write to read-only/);
    }
    expect(chainBytes(m).equals(bytes.subarray(5, 5 + 2 * PAGE_SIZE))).toBe(true);
    expect((await p.read(va, 3 * PAGE_SIZE)).equals(bytes)).toBe(true);
    expect(counters(k)).toEqual(before);
    expect(k.stats().loanBreaks).toBe(0);
    k.checkInvariants();
    mFreem(m);
    k.checkInvariants();
  });

  it('mCopyback into a cluster chain works, and mCopydata reads it back; the user memory is untouched', async () => {
    const { p, va, bytes } = await setup();
    const m = await mbufCopyin(p, va + 5, 2 * PAGE_SIZE);
    const patch = Buffer.from('written by the kernel, across a cluster boundary');
    mCopyback(m, MCLBYTES - 10, patch);
    expect(mCopydata(m, MCLBYTES - 10, patch.length).equals(patch)).toBe(true);
    const want = Buffer.from(bytes.subarray(5, 5 + 2 * PAGE_SIZE));
    patch.copy(want, MCLBYTES - 10);
    expect(chainBytes(m).equals(want)).toBe(true);
    expect((await p.read(va, 3 * PAGE_SIZE)).equals(bytes)).toBe(true);
    mFreem(m);
  });

  it('in a chain of clusters followed by loaned pages, the clusters take writes and the loaned part panics', async () => {
    const { k, p, va, bytes } = await setup();
    const head = await mbufCopyin(p, va, 100);
    mCat(head, await mbufLoan(p, va + PAGE_SIZE, 50));
    mCopyback(head, 0, Buffer.from('header'));
    expect(mCopydata(head, 0, 6).toString()).toBe('header');
    expect(() => mCopyback(head, 100, Buffer.from('x'))).toThrow(KernelPanic);
    expect(mCopydata(head, 100, 50).equals(bytes.subarray(PAGE_SIZE, PAGE_SIZE + 50))).toBe(true);
    mFreem(head);
    expect(counters(k).loanedPages).toBe(0);
    k.checkInvariants();
  });
});

describe('a kernel write that goes around the MMU (a raw view of a loaned mbuf)', () => {
  it('panics when the loan is given back, under diagnostic, naming the frame and its owner', async () => {
    const k = new Kernel({ physPages: 64, swapPages: 0, diagnostic: true });
    const p = k.createProcess();
    const va = await userMemory(p, 2, 62);
    const m = await mbufLoan(p, va + 10, PAGE_SIZE);
    mBuffers(m)[0][3] ^= 0xff;
    expectPanic(() => mFreem(m), /page \d+ \(owner: an anon\) was written while on loan/);
  });

  it('is on in the test suite (LOANOUT_DIAGNOSTIC=1), and off unless asked for otherwise', async () => {
    expect(process.env.LOANOUT_DIAGNOSTIC).toBe('1');
    expect(new Kernel({ physPages: 8 }).uvm.loanHash).not.toBeNull();
    const k = new Kernel({ physPages: 64, swapPages: 0, diagnostic: false });
    const p = k.createProcess();
    const va = await userMemory(p, 1, 63);
    const m = await mbufLoan(p, va, 100);
    mBuffers(m)[0][0] ^= 0xff;
    mFreem(m);
    k.checkInvariants();
  });
});
