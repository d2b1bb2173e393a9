/*
 * A loaned chain is the user's memory itself: its views are views of RAM at the frames the user's
 * pages live in, and loaning allocates no page and copies no byte.
 */
import { Kernel, PAGE_SIZE, type Proc } from '@loanout/core';
import { describe, expect, it } from 'vitest';
import { type Mbuf, mBuffers, mbufLoan, mFreem, mLength } from '../src/index.js';
import { chainBytes, pattern } from './helpers.js';

function frameOf(p: Proc, va: number): number {
  return p.map.pmap.extract(Math.floor(va / PAGE_SIZE));
}

function mbufs(m: Mbuf): Mbuf[] {
  const out: Mbuf[] = [];
  for (let x: Mbuf | null = m; x !== null; x = x.next) out.push(x);
  return out;
}

describe('a loaned chain is zero-copy', () => {
  it("its views are views of the kernel's RAM at the user's frames, offset by the user's offset", async () => {
    const k = new Kernel({ physPages: 256, swapPages: 0 });
    const p = k.createProcess();
    const va = p.mmap(4 * PAGE_SIZE);
    /* touch pages in reverse order: descending frames, one mbuf per page */
    for (let i = 3; i >= 0; i--) await p.write(va + i * PAGE_SIZE, pattern(PAGE_SIZE, i));
    const off = 123;
    const m = await mbufLoan(p, va + off, 3 * PAGE_SIZE);
    const views = mBuffers(m);
    expect(views.length).toBe(4);
    for (const v of views) expect(v.buffer).toBe(k.uvm.ram.buffer);
    expect(views[0].byteOffset).toBe(frameOf(p, va) * PAGE_SIZE + off);
    for (let i = 1; i < 4; i++) expect(views[i].byteOffset).toBe(frameOf(p, va + i * PAGE_SIZE) * PAGE_SIZE);
    expect(views.map((v) => v.length)).toEqual([PAGE_SIZE - off, PAGE_SIZE, PAGE_SIZE, off]);
    expect(mLength(m)).toBe(3 * PAGE_SIZE);
    mFreem(m);
  });

  it('the views share memory with the pages: they are the bytes a page holds, not a copy of them', async () => {
    const k = new Kernel({ physPages: 64, swapPages: 0 });
    const p = k.createProcess();
    const va = p.mmap(PAGE_SIZE);
    await p.write(va, pattern(PAGE_SIZE, 5));
    const m = await mbufLoan(p, va + 1, 10);
    const view = mBuffers(m)[0];
    const frame = frameOf(p, va);
    expect(new Uint8Array(view.buffer, view.byteOffset, 10)).toEqual(
      new Uint8Array(k.uvm.ram.buffer, frame * PAGE_SIZE + 1, 10),
    );
    const pageBytes = k.uvm.pages[frame].bytes();
    expect(pageBytes.buffer).toBe(view.buffer);
    expect(view.byteOffset - pageBytes.byteOffset).toBe(1);
    mFreem(m);
  });

  it('a whole page alone in its mbuf is handed out as the cached view of its frame (no allocation)', async () => {
    const k = new Kernel({ physPages: 64, swapPages: 0 });
    const p = k.createProcess();
    const va = p.mmap(2 * PAGE_SIZE);
    await p.write(va + PAGE_SIZE, Buffer.from('b'));
    await p.write(va, Buffer.from('a'));
    const m = await mbufLoan(p, va, 2 * PAGE_SIZE);
    const views = mBuffers(m);
    expect(views[0]).toBe(k.uvm.ram.frame(frameOf(p, va)));
    expect(views[1]).toBe(k.uvm.ram.frame(frameOf(p, va + PAGE_SIZE)));
    mFreem(m);
  });

  it('loaning resident memory allocates no page and copies nothing', async () => {
    const k = new Kernel({ physPages: 256, swapPages: 0 });
    const p = k.createProcess();
    const va = p.mmap(16 * PAGE_SIZE);
    await p.write(va, pattern(16 * PAGE_SIZE, 1));
    const free = k.stats().freePages;
    const faults = k.stats().faults;
    const m = await mbufLoan(p, va + 17, 15 * PAGE_SIZE);
    expect(k.stats().freePages).toBe(free);
    expect(k.stats().faults).toBe(faults);
    expect(k.stats().loansAnon).toBe(16);
    expect(chainBytes(m).equals(pattern(16 * PAGE_SIZE, 1).subarray(17, 17 + 15 * PAGE_SIZE))).toBe(true);
    mFreem(m);
  });

  it('each mbuf knows the kernel address of its bytes: kva and view name the same memory', async () => {
    const k = new Kernel({ physPages: 64, swapPages: 0 });
    const p = k.createProcess();
    const va = p.mmap(3 * PAGE_SIZE);
    for (let i = 2; i >= 0; i--) await p.write(va + i * PAGE_SIZE, pattern(PAGE_SIZE, 10 + i));
    const m = await mbufLoan(p, va + 2000, 2 * PAGE_SIZE);
    for (const x of mbufs(m)) expect(k.kread(x.kva, x.len).equals(x.view)).toBe(true);
    mFreem(m);
  });
});
