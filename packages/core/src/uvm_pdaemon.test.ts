import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { expectError, frameAt, mappedFile, pattern, settle, useTmpDir } from '../test/helpers.js';
import {
  Kernel,
  PAGE_SIZE,
  Prot,
  uvmKmAllocPage,
  uvmKmFreePage,
  uvmLoan,
  uvmUnloanPages,
  type VmPage,
} from './index.js';
import { PQ_INACTIVE, uvmPageDeactivate, uvmPageUnwire, uvmPageWire } from './uvm_page.js';

const RW = Prot.READ | Prot.WRITE;

async function readPages(p: { read(va: number, n: number): Promise<Buffer> }, va: number, n: number) {
  const out: Buffer[] = [];
  for (let i = 0; i < n; i++) out.push(await p.read(va + i * PAGE_SIZE, PAGE_SIZE));
  return out;
}

describe('anonymous memory under pressure', () => {
  it('pages out to swap and reads every page back with its own bytes', async () => {
    const k = new Kernel({ physPages: 32, swapPages: 64 });
    const p = k.createProcess();
    const n = 48;
    const va = p.mmap(n * PAGE_SIZE);
    for (let i = 0; i < n; i++) await p.write(va + i * PAGE_SIZE, pattern(PAGE_SIZE, i));
    const s = k.stats();
    expect(s.pageouts).toBeGreaterThanOrEqual(n - 32);
    expect(s.swapUsed).toBeGreaterThan(0);
    k.checkInvariants();
    const got = await readPages(p, va, n);
    for (let i = 0; i < n; i++) expect(got[i].equals(pattern(PAGE_SIZE, i))).toBe(true);
    expect(k.stats().pageins).toBeGreaterThan(0);
    k.checkInvariants();
    p.exit();
    await settle(k);
    expect(k.stats()).toMatchObject({ freePages: 32, swapUsed: 0, anons: 0 });
  });

  it('keeps both sides of a fork right while their shared pages go to swap and back', async () => {
    const k = new Kernel({ physPages: 24, swapPages: 64 });
    const p = k.createProcess();
    const n = 20;
    const va = p.mmap(n * PAGE_SIZE);
    for (let i = 0; i < n; i++) await p.write(va + i * PAGE_SIZE, pattern(PAGE_SIZE, i));
    const c = p.fork();
    for (let i = 0; i < n; i += 2) await c.write(va + i * PAGE_SIZE, pattern(PAGE_SIZE, 100 + i));
    k.checkInvariants();
    const inParent = await readPages(p, va, n);
    const inChild = await readPages(c, va, n);
    for (let i = 0; i < n; i++) {
      expect(inParent[i].equals(pattern(PAGE_SIZE, i))).toBe(true);
      expect(inChild[i].equals(pattern(PAGE_SIZE, i % 2 === 0 ? 100 + i : i))).toBe(true);
    }
    expect(k.stats().pageouts).toBeGreaterThan(0);
    k.checkInvariants();
    p.exit();
    c.exit();
    await settle(k);
    expect(k.stats()).toMatchObject({ freePages: 24, swapUsed: 0, anons: 0 });
  });

  it('never takes a wired page', async () => {
    const k = new Kernel({ physPages: 24, swapPages: 64 });
    const p = k.createProcess();
    const va = p.mmap(40 * PAGE_SIZE);
    await p.write(va, Buffer.from('wired'));
    const pg = k.uvm.pages[frameAt(p, va)];
    const anon = pg.uanon!;
    uvmPageWire(pg);
    for (let i = 1; i < 40; i++) await p.write(va + i * PAGE_SIZE, pattern(PAGE_SIZE, i));
    expect(k.stats().pageouts).toBeGreaterThan(15);
    expect(anon.page).toBe(pg);
    expect(anon.swslot).toBe(0);
    expect(pg.uanon).toBe(anon);
    expect(pg.wireCount).toBe(1);
    expect(pg.bytes().subarray(0, 5).toString()).toBe('wired');
    uvmPageUnwire(pg);
    k.checkInvariants();
    expect((await p.read(va, 5)).toString()).toBe('wired');
    p.exit();
    await settle(k);
    expect(k.stats().freePages).toBe(24);
  });

  it('gives ENOMEM only when nothing can be reclaimed: no swap and all memory anonymous', async () => {
    const k = new Kernel({ physPages: 16, swapPages: 0 });
    const p = k.createProcess();
    const va = p.mmap(17 * PAGE_SIZE);
    for (let i = 0; i < 16; i++) await p.write(va + i * PAGE_SIZE, pattern(PAGE_SIZE, i));
    expect(k.stats().freePages).toBe(0);
    await expectError(p.write(va + 16 * PAGE_SIZE, Buffer.from('x')), 'ENOMEM');
    expect(k.stats()).toMatchObject({ freePages: 0, pageouts: 0, anons: 16 });
    k.checkInvariants();
    /* the memory that is there is intact, and freeing some lets the write through */
    const got = await readPages(p, va, 16);
    for (let i = 0; i < 16; i++) expect(got[i].equals(pattern(PAGE_SIZE, i))).toBe(true);
    p.munmap(va, PAGE_SIZE);
    await p.write(va + 16 * PAGE_SIZE, Buffer.from('x'));
    expect((await p.read(va + 16 * PAGE_SIZE, 1)).toString()).toBe('x');
    p.exit();
    await settle(k);
    expect(k.stats().freePages).toBe(16);
  });

  it('gives ENOMEM when swap is full, and frees every slot at exit', async () => {
    const k = new Kernel({ physPages: 16, swapPages: 8 });
    const p = k.createProcess();
    const n = 40;
    const va = p.mmap(n * PAGE_SIZE);
    let written = 0;
    await expect(
      (async () => {
        for (; written < n; written++) await p.write(va + written * PAGE_SIZE, pattern(PAGE_SIZE, written));
      })(),
    ).rejects.toMatchObject({ code: 'ENOMEM' });
    expect(written).toBeGreaterThanOrEqual(16);
    expect(written).toBeLessThan(n);
    expect(k.stats().swapUsed).toBe(8);
    k.checkInvariants();
    /* RAM and swap are full: even paging a page back in has nowhere to go */
    await expectError(p.read(va, written * PAGE_SIZE), 'ENOMEM');
    k.checkInvariants();
    /* letting go of the last pages written makes room, and every other page comes back intact */
    p.munmap(va + (written - 4) * PAGE_SIZE, 4 * PAGE_SIZE);
    const got = await readPages(p, va, written - 4);
    for (let i = 0; i < written - 4; i++) expect(got[i].equals(pattern(PAGE_SIZE, i))).toBe(true);
    p.exit();
    await settle(k);
    expect(k.stats()).toMatchObject({ freePages: 16, swapUsed: 0, anons: 0 });
  });

  it('swaps shared anonymous (aobj) pages and reads them back', async () => {
    const k = new Kernel({ physPages: 24, swapPages: 64 });
    const p = k.createProcess();
    const n = 40;
    const va = p.mmap(n * PAGE_SIZE, { shared: true });
    for (let i = 0; i < n; i++) await p.write(va + i * PAGE_SIZE, pattern(PAGE_SIZE, 200 + i));
    expect(k.stats().pageouts).toBeGreaterThan(0);
    expect(k.stats().swapUsed).toBeGreaterThan(0);
    const c = p.fork();
    const got = await readPages(c, va, n);
    for (let i = 0; i < n; i++) expect(got[i].equals(pattern(PAGE_SIZE, 200 + i))).toBe(true);
    k.checkInvariants();
    p.exit();
    c.exit();
    await settle(k);
    expect(k.stats()).toMatchObject({ freePages: 24, swapUsed: 0 });
  });
});

describe('a swap write that fails', () => {
  it('leaves the page with its anon, frees the new slot, and the bytes survive', async () => {
    const k = new Kernel({ physPages: 16, swapPages: 64 });
    const p = k.createProcess();
    const n = 15;
    const va = p.mmap(n * PAGE_SIZE);
    for (let i = 0; i < n; i++) await p.write(va + i * PAGE_SIZE, pattern(PAGE_SIZE, i));
    let failures = 0;
    k.setIoHook((ev) => {
      if (ev.kind === 'swapout') {
        failures++;
        throw new Error('injected swap write error');
      }
    });
    const before = k.stats();
    await k.pagedaemon.run();
    expect(failures).toBeGreaterThan(0);
    const after = k.stats();
    expect(after.pageouts).toBe(before.pageouts);
    expect(after.swapUsed).toBe(before.swapUsed);
    expect(after.busyPages).toBe(0);
    k.checkInvariants();
    k.setIoHook(null);
    const got = await readPages(p, va, n);
    for (let i = 0; i < n; i++) expect(got[i].equals(pattern(PAGE_SIZE, i))).toBe(true);
    p.exit();
    await settle(k);
    expect(k.stats()).toMatchObject({ freePages: 16, swapUsed: 0, anons: 0 });
  });
});

describe('wired pages on the inactive queue', () => {
  it('do not starve the scan: pages loaned while inactive, then memory runs short, and no false ENOMEM', async () => {
    const k = new Kernel({ physPages: 96, swapPages: 1024 });
    const p = k.createProcess();
    const va = p.mmap(40 * PAGE_SIZE);
    await p.write(va, pattern(40 * PAGE_SIZE, 1));
    /* the pagedaemon's balance would deactivate them in time; a loan then wires them where they are */
    const loaned: VmPage[] = [];
    for (let i = 0; i < 30; i++) {
      const pg = k.uvm.pages[frameAt(p, va + i * PAGE_SIZE)];
      uvmPageDeactivate(pg);
      loaned.push(...(await uvmLoan(p.map, va + i * PAGE_SIZE, PAGE_SIZE, 'kernel')));
    }
    expect(loaned.every((pg) => pg.queue === PQ_INACTIVE && pg.wireCount === 1)).toBe(true);
    const more = p.mmap(50 * PAGE_SIZE);
    await p.write(more, pattern(50 * PAGE_SIZE, 2));
    const kmem: VmPage[] = [];
    for (let i = 0; i < 12; i++) kmem.push(await uvmKmAllocPage(k.uvm));
    k.checkInvariants();
    expect(k.stats().pageouts).toBeGreaterThan(0);
    expect(loaned.every((pg) => pg.wireCount === 1 && pg.loanCount === 1)).toBe(true);
    expect(Buffer.concat(loaned.map((pg) => pg.bytes()))).toEqual(
      pattern(40 * PAGE_SIZE, 1).subarray(0, 30 * PAGE_SIZE),
    );
    for (const pg of kmem) uvmKmFreePage(pg);
    uvmUnloanPages(loaned);
    p.exit();
    await settle(k);
    expect(k.stats()).toMatchObject({ freePages: 96, loanedPages: 0, wiredPages: 0, swapUsed: 0 });
  });
});

describe('file pages under pressure', () => {
  const tmp = useTmpDir();

  it('clean file pages are dropped without swap, and re-read from the file', async () => {
    const n = 40;
    const { k, p, va } = await mappedFile(tmp.dir, 'big', n * PAGE_SIZE, 1);
    const want = pattern(n * PAGE_SIZE, 1);
    for (let pass = 0; pass < 2; pass++) {
      const got = await readPages(p, va, n);
      for (let i = 0; i < n; i++) {
        expect(got[i].equals(want.subarray(i * PAGE_SIZE, (i + 1) * PAGE_SIZE))).toBe(true);
      }
    }
    const s = k.stats();
    expect(s.pageouts).toBeGreaterThan(0);
    expect(s.pageins).toBeGreaterThan(n);
    expect(s.swapUsed).toBe(0);
    k.checkInvariants();
    p.exit();
    await settle(k);
    expect(k.stats().freePages).toBe(16);
  });

  it('dirty shared file pages are written to the file before they are dropped', async () => {
    const n = 40;
    const { file, k, p, va } = await mappedFile(tmp.dir, 'dirty', n * PAGE_SIZE, 2, {
      prot: RW,
      shared: true,
    });
    for (let i = 0; i < n; i++) await p.write(va + i * PAGE_SIZE, pattern(PAGE_SIZE, 50 + i));
    expect(k.stats().pageouts).toBeGreaterThan(0);
    /* pages the pagedaemon wrote back are in the file already, before any sync */
    const early = await readFile(file);
    expect(early.subarray(0, PAGE_SIZE).equals(pattern(PAGE_SIZE, 50))).toBe(true);
    const got = await readPages(p, va, n);
    for (let i = 0; i < n; i++) expect(got[i].equals(pattern(PAGE_SIZE, 50 + i))).toBe(true);
    await k.sync();
    const onDisk = await readFile(file);
    for (let i = 0; i < n; i++) {
      expect(onDisk.subarray(i * PAGE_SIZE, (i + 1) * PAGE_SIZE).equals(pattern(PAGE_SIZE, 50 + i))).toBe(
        true,
      );
    }
    k.checkInvariants();
    p.exit();
    await settle(k);
    expect(k.stats().freePages).toBe(16);
  });

  it('file pages make room for anonymous memory when there is no swap', async () => {
    const { k, p, va: fva } = await mappedFile(tmp.dir, 'cache', 12 * PAGE_SIZE, 3);
    await readPages(p, fva, 12);
    const ava = p.mmap(14 * PAGE_SIZE);
    for (let i = 0; i < 14; i++) await p.write(ava + i * PAGE_SIZE, pattern(PAGE_SIZE, i));
    const got = await readPages(p, ava, 14);
    for (let i = 0; i < 14; i++) expect(got[i].equals(pattern(PAGE_SIZE, i))).toBe(true);
    expect(k.stats().pageouts).toBeGreaterThan(0);
    k.checkInvariants();
    p.exit();
    await settle(k);
    expect(k.stats().freePages).toBe(16);
  });
});
