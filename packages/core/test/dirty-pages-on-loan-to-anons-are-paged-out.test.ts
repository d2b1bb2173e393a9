/*
 * A dirty object page on loan to an anon (O->A) is not stuck in RAM: the pagedaemon writes it back
 * through its object's pager (a file page to its file, a shared anonymous page to swap), takes the now
 * clean page from the object (loan-break event 2) and gives it to the anon, which can then swap it out
 * like any page of its own. So memory lent O->A never makes another process's write fail with ENOMEM
 * while swap is free, and nobody's bytes change.
 */
import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { type Anon, Kernel, PAGE_SIZE, type Proc, Prot, uvmLoan, uvmUnloanAnons } from '../src/index.js';
import { pattern, settle, useTmpDir, writeFileOf } from './helpers.js';

const RW = Prot.READ | Prot.WRITE;

async function fill(p: Proc, va: number, pages: number, seed: number): Promise<void> {
  for (let i = 0; i < pages; i++) await p.write(va + i * PAGE_SIZE, pattern(PAGE_SIZE, seed + i));
}

/* hogWrites: another process writes `pages` pages of its own, one at a time */
async function hogWrites(k: Kernel, pages: number): Promise<Proc> {
  const h = k.createProcess();
  const hv = h.mmap(pages * PAGE_SIZE);
  await fill(h, hv, pages, 500);
  return h;
}

/* expectLent: every anon still holds (resident, or on swap) the page it was lent */
async function expectLent(p: Proc, va: number, anons: Anon[], seed: number): Promise<void> {
  for (const [i, anon] of anons.entries()) {
    if (anon.page !== null) expect(anon.page.bytes().equals(pattern(PAGE_SIZE, seed + i))).toBe(true);
    else expect(anon.swslot).not.toBe(0);
  }
  for (let i = 0; i < anons.length; i++) {
    expect((await p.read(va + i * PAGE_SIZE, PAGE_SIZE)).equals(pattern(PAGE_SIZE, seed + i))).toBe(true);
  }
}

describe('dirty pages on loan to anons are paged out, not kept', () => {
  const tmp = useTmpDir();

  it('shared anonymous memory lent O->A, filling RAM, leaves room for another process to write', async () => {
    const k = new Kernel({ physPages: 32, swapPages: 256 });
    const p = k.createProcess();
    const n = 28;
    const va = p.mmap(n * PAGE_SIZE, { shared: true });
    await fill(p, va, n, 1);
    const anons = await uvmLoan(p.map, va, n * PAGE_SIZE, 'anon');
    /* the hog needs more pages than the ones left over: only the lent pages can make room */
    const h = await hogWrites(k, 24);
    k.checkInvariants();
    expect(k.stats().loanBreaks).toBeGreaterThan(0);
    expect(k.stats().swapUsed).toBeGreaterThan(0);
    await expectLent(p, va, anons, 1);
    h.exit();
    uvmUnloanAnons(anons);
    p.exit();
    await settle(k);
    expect(k.stats()).toMatchObject({ freePages: 32, swapUsed: 0, anons: 0, loanedPages: 0 });
  });

  it('a dirty shared file page lent O->A is written to the file, then given to the anon', async () => {
    const file = await writeFileOf(tmp.dir, 'f', 24 * PAGE_SIZE, 3);
    const k = new Kernel({ physPages: 32, swapPages: 256 });
    const p = k.createProcess();
    const n = 24;
    const va = await p.mmapFile(file, { prot: RW, shared: true });
    await fill(p, va, n, 10);
    const anons = await uvmLoan(p.map, va, n * PAGE_SIZE, 'anon');
    const h = await hogWrites(k, 24);
    k.checkInvariants();
    expect(k.stats().loanBreaks).toBeGreaterThan(0);
    /* the written bytes reached the file before the pages left the object */
    const disk = await readFile(file);
    let written = 0;
    for (let i = 0; i < n; i++) {
      if (disk.subarray(i * PAGE_SIZE, (i + 1) * PAGE_SIZE).equals(pattern(PAGE_SIZE, 10 + i))) written++;
    }
    expect(written).toBeGreaterThan(0);
    await expectLent(p, va, anons, 10);
    h.exit();
    uvmUnloanAnons(anons);
    p.exit();
    await settle(k);
    expect(k.stats()).toMatchObject({ freePages: 32, swapUsed: 0, anons: 0, loanedPages: 0 });
    for (let i = 0; i < n; i++) {
      const page = (await readFile(file)).subarray(i * PAGE_SIZE, (i + 1) * PAGE_SIZE);
      expect(page.equals(pattern(PAGE_SIZE, 10 + i))).toBe(true);
    }
  });
});
