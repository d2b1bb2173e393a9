/*
 * Once user memory is on loan in an mbuf chain, the chain's bytes can't change until it is freed: a
 * user write faults on the read-only mapping and breaks the loan (the user gets a copy); munmap and
 * exit orphan the pages instead of freeing them. Freeing the chain then frees the orphans.
 */
import { readFile } from 'node:fs/promises';
import { Kernel, PAGE_SIZE, Prot } from '@loanout/core';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { mbufCopyin, mbufLoan, mCopydata, mFreem, mLength } from '../src/index.js';
import { chainBytes, makeTmpDir, pattern, removeTmpDir, userMemory, writeFileOf } from './helpers.js';

let dir: string | undefined;
beforeEach(async () => {
  dir = await makeTmpDir();
});
afterEach(async () => {
  await removeTmpDir(dir);
  dir = undefined;
});

describe('a user write after a loan does not reach the mbuf', () => {
  it('anonymous memory: the write breaks the loan; the user sees its write, the chain the old bytes', async () => {
    const k = new Kernel({ physPages: 256, swapPages: 0 });
    const p = k.createProcess();
    const va = await userMemory(p, 3, 1);
    const old = pattern(3 * PAGE_SIZE, 1);
    const m = await mbufLoan(p, va + 100, 2 * PAGE_SIZE);
    const news = Buffer.alloc(3 * PAGE_SIZE, 0xab);
    await p.write(va, news);
    expect(k.stats().loanBreaks).toBe(3);
    expect((await p.read(va, 3 * PAGE_SIZE)).equals(news)).toBe(true);
    expect(chainBytes(m).equals(old.subarray(100, 100 + 2 * PAGE_SIZE))).toBe(true);
    expect(mCopydata(m, 0, mLength(m)).equals(old.subarray(100, 100 + 2 * PAGE_SIZE))).toBe(true);
    expect(k.stats().orphanPages).toBe(3);
    k.checkInvariants();
    const freed = k.stats().orphansFreed;
    mFreem(m);
    expect(k.stats().orphansFreed - freed).toBe(3);
    expect(k.stats().loanedPages).toBe(0);
    k.checkInvariants();
  });

  it('a write to bytes of a loaned page outside the chain still breaks the loan, and the chain is unchanged', async () => {
    const k = new Kernel({ physPages: 64, swapPages: 0 });
    const p = k.createProcess();
    const va = await userMemory(p, 1, 2);
    const m = await mbufLoan(p, va + 1000, 10);
    await p.write(va, Buffer.from('elsewhere on the page'));
    await p.write(va + PAGE_SIZE - 1, Buffer.from('!'));
    expect(k.stats().loanBreaks).toBe(1);
    expect(chainBytes(m).equals(pattern(PAGE_SIZE, 2).subarray(1000, 1010))).toBe(true);
    mFreem(m);
    k.checkInvariants();
  });

  it('a copied chain needs no loan: the same write changes neither it nor any count of breaks', async () => {
    const k = new Kernel({ physPages: 64, swapPages: 0 });
    const p = k.createProcess();
    const va = await userMemory(p, 2, 3);
    const m = await mbufCopyin(p, va + 1, PAGE_SIZE);
    await p.write(va, Buffer.alloc(2 * PAGE_SIZE, 1));
    expect(k.stats().loanBreaks).toBe(0);
    expect(chainBytes(m).equals(pattern(2 * PAGE_SIZE, 3).subarray(1, 1 + PAGE_SIZE))).toBe(true);
    mFreem(m);
  });

  it('a private file mapping: the write goes to a private copy; chain and file keep the file bytes', async () => {
    const k = new Kernel({ physPages: 64, swapPages: 0 });
    const p = k.createProcess();
    const content = pattern(2 * PAGE_SIZE + 77, 4);
    const file = await writeFileOf(dir!, 'private.bin', content);
    const va = await p.mmapFile(file, { prot: Prot.READ | Prot.WRITE });
    const m = await mbufLoan(p, va + 7, 2 * PAGE_SIZE + 70);
    expect(k.stats().loansObj).toBe(3);
    await p.write(va, Buffer.alloc(2 * PAGE_SIZE, 0xcd));
    expect((await p.read(va, 2 * PAGE_SIZE)).equals(Buffer.alloc(2 * PAGE_SIZE, 0xcd))).toBe(true);
    expect(chainBytes(m).equals(content.subarray(7))).toBe(true);
    k.checkInvariants();
    mFreem(m);
    p.exit();
    await k.sync();
    expect((await readFile(file)).equals(content)).toBe(true);
    k.checkInvariants();
  });

  it('a shared file mapping: the write breaks the object loan; the file gets the write, the chain does not', async () => {
    const k = new Kernel({ physPages: 64, swapPages: 0 });
    const p = k.createProcess();
    const content = pattern(PAGE_SIZE, 5);
    const file = await writeFileOf(dir!, 'shared.bin', content);
    const va = await p.mmapFile(file, { prot: Prot.READ | Prot.WRITE, shared: true });
    const m = await mbufLoan(p, va, PAGE_SIZE);
    await p.write(va + 10, Buffer.from('NEW'));
    expect(k.stats().loanBreaks).toBe(1);
    expect(chainBytes(m).equals(content)).toBe(true);
    await k.sync();
    const onDisk = await readFile(file);
    expect(onDisk.subarray(10, 13).toString()).toBe('NEW');
    expect(chainBytes(m).equals(content)).toBe(true);
    k.checkInvariants();
    mFreem(m);
    p.exit();
    await k.sync();
    k.checkInvariants();
  });

  it('munmap and exit orphan loaned pages: the chain keeps its bytes; freeing it frees every page', async () => {
    const k = new Kernel({ physPages: 128, swapPages: 0 });
    const p = k.createProcess();
    const a = await userMemory(p, 2, 6);
    const b = await userMemory(p, 2, 7);
    const ma = await mbufLoan(p, a + 1, 2 * PAGE_SIZE - 2);
    const mb = await mbufLoan(p, b + 2, PAGE_SIZE);
    p.munmap(a, 2 * PAGE_SIZE);
    expect(chainBytes(ma).equals(pattern(2 * PAGE_SIZE, 6).subarray(1, 2 * PAGE_SIZE - 1))).toBe(true);
    k.checkInvariants();
    p.exit();
    expect(chainBytes(mb).equals(pattern(2 * PAGE_SIZE, 7).subarray(2, 2 + PAGE_SIZE))).toBe(true);
    expect(k.stats().orphanPages).toBe(4);
    k.checkInvariants();
    mFreem(ma);
    mFreem(mb);
    expect(k.stats().loanedPages).toBe(0);
    expect(k.stats().freePages).toBe(128);
    k.checkInvariants();
  });
});
