/*
 * Memory mapped from a real file is loaned object to kernel (O->K): the vnode's own pages, read in
 * from the file by the pager if they aren't resident, go into the chain -- the way sendfile works.
 */
import { readFile } from 'node:fs/promises';
import { Kernel, PAGE_SIZE, Prot } from '@loanout/core';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { mBuffers, mbufCopyin, mbufLoan, mCopydata, mFreem, mLength } from '../src/index.js';
import {
  chainBytes,
  counters,
  expectError,
  makeTmpDir,
  pattern,
  removeTmpDir,
  writeFileOf,
} from './helpers.js';

let dir: string | undefined;
beforeEach(async () => {
  dir = await makeTmpDir();
});
afterEach(async () => {
  await removeTmpDir(dir);
  dir = undefined;
});

describe('file-backed memory', () => {
  it('a loan that waits for the file while its process exits fails with ESRCH and leaves nothing', async () => {
    const k = new Kernel({ physPages: 64, swapPages: 0 });
    const p = k.createProcess();
    const va = await p.mmapFile(await writeFileOf(dir!, 'exit.bin', pattern(2 * PAGE_SIZE, 43)));
    let release = () => {};
    const gate = new Promise<void>((r) => {
      release = r;
    });
    let reading = false;
    k.setIoHook(async (ev) => {
      if (ev.kind !== 'vnode-read') return;
      reading = true;
      await gate;
    });
    const loan = mbufLoan(p, va, 2 * PAGE_SIZE);
    while (!reading) await new Promise((r) => setImmediate(r));
    p.exit();
    release();
    await expectError(loan, 'ESRCH');
    await k.idle();
    expect(counters(k)).toMatchObject({ loanedPages: 0, wiredPages: 0, kvaPagesInUse: 0 });
    k.checkInvariants();
  });
  it('a loan of a mapped file is O->K: the pages are read in, wired, and are the vnode object pages', async () => {
    const k = new Kernel({ physPages: 128, swapPages: 0 });
    const p = k.createProcess();
    const content = pattern(3 * PAGE_SIZE + 123, 41);
    const file = await writeFileOf(dir!, 'data.bin', content);
    const va = await p.mmapFile(file);
    const pageins = k.stats().pageins;
    const m = await mbufLoan(p, va, content.length);
    const s = k.stats();
    expect(s.loansObj).toBe(4);
    expect(s.loansAnon).toBe(0);
    expect(s.pageins - pageins).toBe(4);
    expect(s.loanedPages).toBe(4);
    expect(s.wiredPages).toBe(4);
    expect(mLength(m)).toBe(content.length);
    expect(chainBytes(m).equals(content)).toBe(true);
    const vn = [...k.uvm.vnodes.values()][0];
    for (const v of mBuffers(m)) {
      const pg = k.uvm.pages[Math.floor(v.byteOffset / PAGE_SIZE)];
      expect(pg.uobject).toBe(vn);
      expect(pg.loanCount).toBe(1);
    }
    k.checkInvariants();
    mFreem(m);
    expect(k.stats().loanedPages).toBe(0);
    expect(k.stats().wiredPages).toBe(0);
    k.checkInvariants();
    p.exit();
    await k.sync();
    expect(k.stats().freePages).toBe(128);
  });

  it('unaligned pieces of a file: offset 1, the last page, past the end of file (zeros to the page end)', async () => {
    const k = new Kernel({ physPages: 128, swapPages: 0 });
    const p = k.createProcess();
    const content = pattern(2 * PAGE_SIZE + 10, 42);
    const file = await writeFileOf(dir!, 'odd.bin', content);
    const va = await p.mmapFile(file);
    const a = await mbufLoan(p, va + 1, PAGE_SIZE);
    const b = await mbufLoan(p, va + 2 * PAGE_SIZE + 5, 5);
    const tail = await mbufLoan(p, va + 2 * PAGE_SIZE, PAGE_SIZE);
    expect(chainBytes(a).equals(content.subarray(1, 1 + PAGE_SIZE))).toBe(true);
    expect(chainBytes(b).equals(content.subarray(2 * PAGE_SIZE + 5))).toBe(true);
    const want = Buffer.concat([content.subarray(2 * PAGE_SIZE), Buffer.alloc(PAGE_SIZE - 10)]);
    expect(chainBytes(tail).equals(want)).toBe(true);
    expect(mCopydata(tail, 0, PAGE_SIZE).equals(want)).toBe(true);
    mFreem(a);
    mFreem(b);
    mFreem(tail);
    k.checkInvariants();
    await done(k);
  });

  it('a mapping at a file offset loans the pages from that offset', async () => {
    const k = new Kernel({ physPages: 128, swapPages: 0 });
    const p = k.createProcess();
    const content = pattern(5 * PAGE_SIZE, 43);
    const file = await writeFileOf(dir!, 'offset.bin', content);
    const va = await p.mmapFile(file, { offset: 2 * PAGE_SIZE, length: 2 * PAGE_SIZE });
    const m = await mbufLoan(p, va + 99, PAGE_SIZE + 1);
    expect(chainBytes(m).equals(content.subarray(2 * PAGE_SIZE + 99, 3 * PAGE_SIZE + 100))).toBe(true);
    await expectError(mbufLoan(p, va + PAGE_SIZE, 2 * PAGE_SIZE), 'EFAULT');
    mFreem(m);
    expect(counters(k).loanedPages).toBe(0);
    await done(k);
  });

  it('two processes mapping one file loan the same pages; the file is never written', async () => {
    const k = new Kernel({ physPages: 128, swapPages: 0 });
    const content = pattern(2 * PAGE_SIZE, 44);
    const file = await writeFileOf(dir!, 'shared-cache.bin', content);
    const p1 = k.createProcess();
    const p2 = k.createProcess();
    const v1 = await p1.mmapFile(file);
    const v2 = await p2.mmapFile(file);
    const m1 = await mbufLoan(p1, v1, 2 * PAGE_SIZE);
    const m2 = await mbufLoan(p2, v2 + 1, 10);
    expect(mBuffers(m2)[0].byteOffset).toBe(mBuffers(m1)[0].byteOffset + 1);
    expect(k.uvm.pages[Math.floor(mBuffers(m2)[0].byteOffset / PAGE_SIZE)].loanCount).toBe(2);
    p1.exit();
    expect(chainBytes(m1).equals(content)).toBe(true);
    mFreem(m1);
    mFreem(m2);
    p2.exit();
    await k.sync();
    expect((await readFile(file)).equals(content)).toBe(true);
    expect(k.stats().freePages).toBe(128);
    k.checkInvariants();
  });

  it('mbufCopyin of a mapped file copies the file bytes into clusters', async () => {
    const k = new Kernel({ physPages: 128, swapPages: 0 });
    const p = k.createProcess();
    const content = pattern(PAGE_SIZE + 500, 45);
    const file = await writeFileOf(dir!, 'copy.bin', content);
    const va = await p.mmapFile(file, { prot: Prot.READ | Prot.WRITE });
    const m = await mbufCopyin(p, va + 3, PAGE_SIZE + 497);
    expect(chainBytes(m).equals(content.subarray(3))).toBe(true);
    expect(k.stats().loanedPages).toBe(0);
    mFreem(m);
    await done(k);
  });
});

/* done: exit every process and wait until its files are written back and closed (none left to GC) */
async function done(k: Kernel): Promise<void> {
  for (const proc of k.processes) proc.exit();
  await k.idle();
  expect(k.uvm.vnodes.size).toBe(0);
  k.checkInvariants();
}
