/*
 * mbufLoan takes any va and length: it loans the whole pages under them, and the chain covers just the
 * user's bytes -- a partial first and last page. mbufCopyin takes the same ranges. Both must agree
 * with the user's memory byte for byte.
 */
import { Kernel, PAGE_SIZE } from '@loanout/core';
import { describe, expect, it } from 'vitest';
import {
  MCLBYTES,
  mBuffers,
  mbufCopyin,
  mbufLoan,
  mbufStats,
  mCopydata,
  mFreem,
  mLength,
} from '../src/index.js';
import { chainBytes, counters, pattern } from './helpers.js';

const NPAGES = 6;

const ranges: [string, number, number][] = [
  ['offset 1, one page long', 1, PAGE_SIZE],
  ['offset 4095, two bytes across a page boundary', 4095, 2],
  ['offset 4095, one byte (the last of a page)', 4095, 1],
  ['a single byte at the start of a page', PAGE_SIZE, 1],
  ['a single byte in the middle of a page', 2 * PAGE_SIZE + 1234, 1],
  ['crossing three page boundaries', 100, 3 * PAGE_SIZE],
  ['ending exactly at a page boundary', 7, 2 * PAGE_SIZE - 7],
  ['starting at a page boundary, ending inside a page', PAGE_SIZE, PAGE_SIZE + 1],
  ['whole pages', PAGE_SIZE, 2 * PAGE_SIZE],
  ['all of the mapping but its first and last byte', 1, NPAGES * PAGE_SIZE - 2],
  ['all of the mapping', 0, NPAGES * PAGE_SIZE],
  ['the very last byte of the mapping', NPAGES * PAGE_SIZE - 1, 1],
  ['one cluster plus one byte', 10, MCLBYTES + 1],
];

function pagesSpanned(off: number, len: number): number {
  return Math.floor((off + len - 1) / PAGE_SIZE) - Math.floor(off / PAGE_SIZE) + 1;
}

async function setup(reverse: boolean) {
  const k = new Kernel({ physPages: 256, swapPages: 0 });
  const p = k.createProcess();
  const va = p.mmap(NPAGES * PAGE_SIZE);
  const bytes = pattern(NPAGES * PAGE_SIZE, 21);
  for (let j = 0; j < NPAGES; j++) {
    const i = reverse ? NPAGES - 1 - j : j;
    await p.write(va + i * PAGE_SIZE, bytes.subarray(i * PAGE_SIZE, (i + 1) * PAGE_SIZE));
  }
  return { k, p, va, bytes };
}

describe('unaligned ranges', () => {
  for (const reverse of [false, true]) {
    const layout = reverse ? 'scattered frames' : 'adjacent frames';
    for (const [name, off, len] of ranges) {
      it(`${name} (${layout}): the loaned chain covers exactly the bytes, over exactly the pages under them`, async () => {
        const { k, p, va, bytes } = await setup(reverse);
        const want = bytes.subarray(off, off + len);
        const m = await mbufLoan(p, va + off, len);
        expect(mLength(m)).toBe(len);
        expect(m.pkthdrLen).toBe(len);
        expect(chainBytes(m).equals(want)).toBe(true);
        expect(mCopydata(m, 0, len).equals(want)).toBe(true);
        const n = pagesSpanned(off, len);
        expect(k.stats().loanedPages).toBe(n);
        expect(mbufStats(k).kvaPagesInUse).toBe(n);
        const first = mBuffers(m)[0];
        const frame = p.map.pmap.extract(Math.floor((va + off) / PAGE_SIZE));
        expect(first.byteOffset).toBe(frame * PAGE_SIZE + (off % PAGE_SIZE));
        expect(mBuffers(m).length).toBe(reverse ? n : 1);
        k.checkInvariants();
        mFreem(m);
        expect(counters(k).loanedPages).toBe(0);
        expect(counters(k).kvaPagesInUse).toBe(0);
      });

      it(`${name} (${layout}): the copied chain holds exactly the bytes`, async () => {
        const { k, p, va, bytes } = await setup(reverse);
        const want = bytes.subarray(off, off + len);
        const m = await mbufCopyin(p, va + off, len);
        expect(mLength(m)).toBe(len);
        expect(chainBytes(m).equals(want)).toBe(true);
        expect(mCopydata(m, 0, len).equals(want)).toBe(true);
        expect(mbufStats(k).clustersInUse).toBe(Math.ceil(len / MCLBYTES));
        mFreem(m);
        expect(mbufStats(k).clustersInUse).toBe(0);
        k.checkInvariants();
      });
    }
  }
});
