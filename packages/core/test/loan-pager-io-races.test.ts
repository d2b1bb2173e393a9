/*
 * loan-pager-io-races.test.ts: the world moves while a loan sleeps in pager I/O.
 *
 * uvmLoan only awaits on its slow path (a file page not resident, an anon on swap, a BUSY page). The
 * seed then revalidates: the map version (uvmfault_relock), the page's RELEASED flag, the amap slot.
 * Each test holds an I/O open with the kernel's I/O hook, changes the world in the middle of it, and
 * checks that the loan either ends up with exactly the right page or fails cleanly -- and that
 * nothing leaks either way (every page free again once everything is gone).
 */
import fs from 'node:fs/promises';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  type Anon,
  type IoEvent,
  Kernel,
  PAGE_SIZE,
  Prot,
  uvmLoan,
  uvmUnloanAnons,
  uvmUnloanPages,
  type VmPage,
  type VnodeObject,
} from '../src/index.js';
import {
  anonAt,
  entryAt,
  expectAllFree,
  expectKernelError,
  fill,
  hog,
  hookOnce,
  makeTmpDir,
  objectPage,
  pattern,
  type TmpDir,
  tick,
} from './loan-helpers.js';

const P = PAGE_SIZE;

let tmp: TmpDir;
beforeEach(async () => {
  tmp = await makeTmpDir();
});
afterEach(async () => {
  await tmp.remove();
});

async function fileProc(k: Kernel, npages: number, opts: { shared?: boolean; prot?: number } = {}) {
  const data = pattern(npages + 11, npages * P);
  const file = await tmp.file(`race-${npages}-${opts.shared ? 's' : 'p'}`, data);
  const p = k.createProcess();
  const va = await p.mmapFile(file, { prot: opts.prot ?? Prot.READ, shared: opts.shared });
  return { p, va, data, file };
}

const vnodeRead = (offset?: number) => (ev: IoEvent) =>
  ev.kind === 'vnode-read' && (offset === undefined || ev.offset === offset);

/* an anonymous page written with `data` and then pushed out to swap by memory pressure */
async function swappedAnon(k: Kernel, data: Buffer) {
  const p = k.createProcess();
  const va = p.mmap(P);
  await p.write(va, data);
  const anon = anonAt(p, va)!;
  const h = await hog(k, k.stats().physPages * 2);
  await k.idle();
  expect(anon.page).toBeNull();
  expect(anon.swslot).not.toBe(0);
  h.exit();
  await k.idle();
  return { p, va, anon };
}

describe('the map changes during the vnode read', () => {
  for (const to of ['kernel', 'anon'] as const) {
    it(`munmap and mprotect elsewhere in the map: the ${to} loan looks up again and is still right`, async () => {
      const k = new Kernel({ physPages: 128 });
      const { p, va, data } = await fileProc(k, 3);
      const other = p.mmap(4 * P);
      await p.write(other, fill(1, 4 * P));
      const h = hookOnce(k, vnodeRead(1), () => {
        p.munmap(other, P);
        p.mprotect(other + 2 * P, 2 * P, Prot.READ);
      });
      const out = await uvmLoan(p.map, va, 3 * P, to);
      k.checkInvariants();
      expect(h.fired()).toBe(1);
      const pages = to === 'kernel' ? (out as VmPage[]) : (out as Anon[]).map((a) => a.page!);
      for (let i = 0; i < 3; i++) {
        expect(pages[i]).toBe(objectPage(p, va + i * P));
        expect(pages[i].bytes()).toEqual(data.subarray(i * P, (i + 1) * P));
        expect(pages[i].loanCount).toBe(1);
        expect(pages[i].flags & 1).toBe(0);
      }
      expect(k.stats().pageins).toBe(3);
      expect(k.stats().busyPages).toBe(0);
      if (to === 'kernel') uvmUnloanPages(out as VmPage[]);
      else uvmUnloanAnons(out as Anon[]);
      await expectAllFree(k);
    });
  }

  it('the process exits during the read: EFAULT, the loans taken before dropped, every page freed', async () => {
    const k = new Kernel({ physPages: 128 });
    const p = k.createProcess();
    const anonVa = p.mmap(2 * P);
    const data = pattern(12, 2 * P);
    await p.write(anonVa, data);
    const fva = await p.mmapFile(await tmp.file('exit-during-read', pattern(13, 3 * P)));
    expect(fva).toBe(anonVa + 2 * P);
    const seen: Buffer[] = [];
    /* two anon pages and the first file page are loaned before the second file page's read sleeps */
    hookOnce(k, vnodeRead(1), () => {
      const s = k.stats();
      expect([s.loansAnon, s.loansObj, s.loanedPages]).toEqual([2, 1, 3]);
      for (const f of [anonAt(p, anonVa)!.page!, anonAt(p, anonVa + P)!.page!])
        seen.push(Buffer.from(f.bytes()));
      p.exit();
      expect(k.stats().orphanPages).toBe(2);
    });
    await expectKernelError(uvmLoan(p.map, anonVa, 5 * P, 'kernel'), 'EFAULT');
    k.checkInvariants();
    expect(Buffer.concat(seen)).toEqual(data);
    const s = k.stats();
    expect([s.loanedPages, s.wiredPages, s.unloans]).toEqual([0, 0, 3]);
    expect(s.orphansFreed).toBeGreaterThanOrEqual(2);
    await expectAllFree(k);
  });

  it('the loaned range is remapped (munmap + a new mapping at the same address) during the read', async () => {
    const k = new Kernel({ physPages: 128 });
    const { p, va } = await fileProc(k, 2);
    hookOnce(k, vnodeRead(0), async () => {
      p.munmap(va, 2 * P);
      expect(p.mmap(2 * P)).toBe(va);
      await p.write(va, fill(0x5c, 2 * P));
    });
    const pages = await uvmLoan(p.map, va, 2 * P, 'kernel');
    k.checkInvariants();
    /* the loan is of what is mapped there now, not of the file that was */
    expect(pages.map((pg) => pg.uobject)).toEqual([null, null]);
    expect(Buffer.concat(pages.map((pg) => pg.bytes()))).toEqual(fill(0x5c, 2 * P));
    uvmUnloanPages(pages);
    await expectAllFree(k);
  });
});

describe('the page is RELEASED during the read', () => {
  for (const to of ['kernel', 'anon'] as const) {
    it(`object truncated under the page (${to}): relookup, EFAULT, the page freed, nothing leaked`, async () => {
      const k = new Kernel({ physPages: 128 });
      const { p, va } = await fileProc(k, 4);
      const obj = entryAt(p, va).object!;
      hookOnce(k, vnodeRead(2), () => obj.truncate(2));
      await expectKernelError(uvmLoan(p.map, va, 4 * P, to), 'EFAULT');
      k.checkInvariants();
      expect(obj.pages[2]).toBeUndefined();
      expect(obj.resident).toBe(2);
      const s = k.stats();
      expect([s.loanedPages, s.wiredPages, s.busyPages, s.anons]).toEqual([0, 0, 0, 0]);
      /* the pages before the cut are still there to be loaned */
      const ok = await uvmLoan(p.map, va, 2 * P, to);
      expect(ok).toHaveLength(2);
      if (to === 'kernel') uvmUnloanPages(ok as VmPage[]);
      else uvmUnloanAnons(ok as Anon[]);
      await expectAllFree(k);
    });
  }

  it('truncated to 0 while the only page of the loan is read: EFAULT', async () => {
    const k = new Kernel({ physPages: 64 });
    const { p, va } = await fileProc(k, 1);
    hookOnce(k, vnodeRead(), () => entryAt(p, va).object!.truncate(0));
    await expectKernelError(uvmLoan(p.map, va, P, 'anon'), 'EFAULT');
    k.checkInvariants();
    await expectAllFree(k);
  });

  it('the mapping being loaned is unmapped (last reference to the file) during the read: EFAULT', async () => {
    const k = new Kernel({ physPages: 64 });
    const { p, va } = await fileProc(k, 2);
    const obj = entryAt(p, va).object!;
    hookOnce(k, vnodeRead(1), () => p.munmap(va, 2 * P));
    await expectKernelError(uvmLoan(p.map, va, 2 * P, 'kernel'), 'EFAULT');
    await k.idle();
    k.checkInvariants();
    expect(obj.dead).toBe(true);
    expect(obj.resident).toBe(0);
    await expectAllFree(k);
  });

  it('another mapping keeps the file alive: munmap of the loaned mapping still fails the loan cleanly', async () => {
    const k = new Kernel({ physPages: 64 });
    const { p, va, file, data } = await fileProc(k, 2);
    const q = k.createProcess();
    const qva = await q.mmapFile(file);
    hookOnce(k, vnodeRead(0), () => p.munmap(va, 2 * P));
    await expectKernelError(uvmLoan(p.map, va, 2 * P, 'kernel'), 'EFAULT');
    k.checkInvariants();
    /* the page read for the failed loan stayed in the object, usable by the other mapping */
    expect(objectPage(q, qva)!.loanCount).toBe(0);
    expect(await q.read(qva, P)).toEqual(data.subarray(0, P));
    expect(k.stats().pageins).toBe(1);
    await expectAllFree(k);
  });
});

describe('the amap slot is filled during the read', () => {
  it('an anon loan relooks up and takes the new anon (A->A), which keeps the bytes it had', async () => {
    const k = new Kernel({ physPages: 128 });
    const { p, va, data } = await fileProc(k, 1, { prot: Prot.READ | Prot.WRITE });
    let loaning: Promise<Anon[]> | null = null;
    hookOnce(k, vnodeRead(0), async () => {
      loaning = uvmLoan(p.map, va, P, 'anon');
      await tick();
    });
    await p.write(va, fill(0xab, 32));
    const [anon] = await loaning!;
    k.checkInvariants();
    const s = k.stats();
    expect([s.loansAnon, s.loansOA, s.pageins]).toEqual([1, 0, 1]);
    /* the anon was promoted for the writer and loaned before the writer's bytes landed */
    expect(anon.page!.uobject).toBeNull();
    expect(anon.page!.bytes()).toEqual(data);
    expect(anonAt(p, va)).not.toBe(anon);
    expect(await p.read(va, 32)).toEqual(fill(0xab, 32));
    expect(objectPage(p, va)!.bytes()).toEqual(data);
    uvmUnloanAnons([anon]);
    await expectAllFree(k);
  });

  it('a write to the next page completes during the read of the first: the loan then loans its anon page', async () => {
    const k = new Kernel({ physPages: 128 });
    const { p, va, data } = await fileProc(k, 2, { prot: Prot.READ | Prot.WRITE });
    let writing: Promise<void> | null = null;
    hookOnce(k, vnodeRead(0), async () => {
      /* the read of page 0 holds until the write (with its own read of page 1) is done: real file
         reads complete in any order, so without this the loan could reach page 1 first */
      writing = p.write(va + P, fill(0x77, 8));
      await writing;
    });
    const pages = await uvmLoan(p.map, va, 2 * P, 'kernel');
    await writing!;
    k.checkInvariants();
    const s = k.stats();
    expect([s.loansObj, s.loansAnon, s.pageins]).toEqual([1, 1, 2]);
    expect(pages[0]).toBe(objectPage(p, va));
    expect(pages[0].bytes()).toEqual(data.subarray(0, P));
    /* page 1 is the writer's anon page: the write finished while the loan slept, the loan sees it */
    expect(pages[1]).toBe(anonAt(p, va + P)!.page);
    expect(pages[1].uobject).toBeNull();
    expect(pages[1].bytes().subarray(0, 8)).toEqual(fill(0x77, 8));
    expect(pages[1].bytes().subarray(8)).toEqual(data.subarray(P + 8));
    expect(objectPage(p, va + P)!.bytes()).toEqual(data.subarray(P));
    expect(s.loanBreaks).toBe(0);
    /* and from now on it is a loaned page like any other: the next write breaks the loan */
    const seen = Buffer.from(pages[1].bytes());
    await p.write(va + P, fill(0x78, 8));
    expect(k.stats().loanBreaks).toBe(1);
    expect(pages[1].bytes()).toEqual(seen);
    expect(await p.read(va + P, 8)).toEqual(fill(0x78, 8));
    uvmUnloanPages(pages);
    await expectAllFree(k);
  });
});

describe('several borrowers of one page in flight', () => {
  it('two loans of a page not yet resident: one read, both get the same page, loanCount 2', async () => {
    const k = new Kernel({ physPages: 64 });
    const { p, va, data } = await fileProc(k, 1);
    const q = k.createProcess();
    const qva = await q.mmapFile((entryAt(p, va).object as VnodeObject).path);
    const evs: IoEvent[] = [];
    k.setIoHook(async (ev) => {
      evs.push(ev);
      await tick();
    });
    const [a, b, c] = await Promise.all([
      uvmLoan(p.map, va, P, 'kernel'),
      uvmLoan(q.map, qva, P, 'kernel'),
      uvmLoan(q.map, qva, P, 'anon'),
    ]);
    k.checkInvariants();
    expect(evs).toHaveLength(1);
    expect(a[0]).toBe(b[0]);
    expect(c[0].page).toBe(a[0]);
    expect(a[0].loanCount).toBe(3);
    expect(a[0].wireCount).toBe(2);
    expect(a[0].bytes()).toEqual(data);
    uvmUnloanPages(a);
    uvmUnloanPages(b);
    uvmUnloanAnons(c);
    await expectAllFree(k);
  });

  it('the first reader fails with EIO; a loan waiting for the same page reads it again and succeeds', async () => {
    const k = new Kernel({ physPages: 64 });
    const { p, va, data } = await fileProc(k, 1);
    let reads = 0;
    k.setIoHook(async (ev) => {
      if (ev.kind !== 'vnode-read') return;
      reads++;
      await tick();
      if (reads === 1) throw new Error('transient');
    });
    const [first, second] = await Promise.allSettled([
      uvmLoan(p.map, va, P, 'kernel'),
      uvmLoan(p.map, va, P, 'kernel'),
    ]);
    k.checkInvariants();
    expect(first.status).toBe('rejected');
    expect((first as PromiseRejectedResult).reason).toMatchObject({ name: 'KernelError', code: 'EIO' });
    expect(second.status).toBe('fulfilled');
    const pages = (second as PromiseFulfilledResult<VmPage[]>).value;
    expect(reads).toBe(2);
    expect(pages[0].bytes()).toEqual(data);
    expect(pages[0].loanCount).toBe(1);
    uvmUnloanPages(pages);
    await expectAllFree(k);
  });

  it('a loan of a dirty file page while it is being written back waits for the write, then loans it', async () => {
    const k = new Kernel({ physPages: 64 });
    const { p, va, file } = await fileProc(k, 1, { shared: true, prot: Prot.READ | Prot.WRITE });
    await p.write(va, fill(0x31, 100));
    let loaning: Promise<VmPage[]> | null = null;
    const h = hookOnce(
      k,
      (ev) => ev.kind === 'vnode-write',
      async () => {
        loaning = uvmLoan(p.map, va, P, 'kernel');
        await tick();
        expect(k.stats().loanedPages).toBe(0);
      },
    );
    await k.sync();
    const pages = await loaning!;
    k.checkInvariants();
    expect(h.fired()).toBe(1);
    expect(pages[0]).toBe(objectPage(p, va));
    expect(pages[0].bytes().subarray(0, 100)).toEqual(fill(0x31, 100));
    expect((await fs.readFile(file)).subarray(0, 100)).toEqual(fill(0x31, 100));
    await p.write(va, fill(0x32, 100));
    expect(pages[0].bytes().subarray(0, 100)).toEqual(fill(0x31, 100));
    uvmUnloanPages(pages);
    await expectAllFree(k);
  });
});

describe('anon pages on swap: the A->K loan swaps them in', () => {
  it('a swapped-out anon page is brought back for the loan with its bytes', async () => {
    const k = new Kernel({ physPages: 32, swapPages: 256 });
    const data = pattern(21, P);
    const { p, va, anon } = await swappedAnon(k, data);
    const swapIns: IoEvent[] = [];
    k.setIoHook((ev) => {
      if (ev.kind === 'swapin') swapIns.push(ev);
    });
    const [pg] = await uvmLoan(p.map, va, P, 'kernel');
    k.checkInvariants();
    expect(swapIns).toHaveLength(1);
    expect(pg).toBe(anon.page);
    expect(anon.swslot).toBe(0);
    expect(pg.bytes()).toEqual(data);
    expect([pg.loanCount, pg.wireCount, pg.anonOwns]).toEqual([1, 1, true]);
    uvmUnloanPages([pg]);
    await expectAllFree(k);
  });

  it('the map changes during the swap-in: relookup, the loan is still right', async () => {
    const k = new Kernel({ physPages: 32, swapPages: 256 });
    const data = pattern(22, P);
    const { p, va, anon } = await swappedAnon(k, data);
    const other = p.mmap(P);
    const h = hookOnce(
      k,
      (ev) => ev.kind === 'swapin',
      () => p.munmap(other, P),
    );
    const [pg] = await uvmLoan(p.map, va, P, 'kernel');
    k.checkInvariants();
    expect(h.fired()).toBe(1);
    expect(pg).toBe(anon.page);
    expect(pg.bytes()).toEqual(data);
    expect(pg.loanCount).toBe(1);
    uvmUnloanPages([pg]);
    await expectAllFree(k);
  });

  it('the anon is freed (munmap) during the swap-in: EFAULT, page and swap slot freed', async () => {
    const k = new Kernel({ physPages: 32, swapPages: 256 });
    const { p, va } = await swappedAnon(k, pattern(23, P));
    hookOnce(
      k,
      (ev) => ev.kind === 'swapin',
      () => p.munmap(va, P),
    );
    await expectKernelError(uvmLoan(p.map, va, P, 'kernel'), 'EFAULT');
    k.checkInvariants();
    const s = k.stats();
    expect([s.loanedPages, s.anons, s.swapUsed, s.busyPages]).toEqual([0, 0, 0, 0]);
    await expectAllFree(k);
  });

  it('an A->A loan keeps the anon alive when its mapping goes away during a swap-in for an A->K loan', async () => {
    const k = new Kernel({ physPages: 32, swapPages: 256 });
    const data = pattern(24, P);
    const { p, va, anon } = await swappedAnon(k, data);
    const [held] = await uvmLoan(p.map, va, P, 'anon');
    expect(held).toBe(anon);
    hookOnce(
      k,
      (ev) => ev.kind === 'swapin',
      () => p.munmap(va, P),
    );
    await expectKernelError(uvmLoan(p.map, va, P, 'kernel'), 'EFAULT');
    k.checkInvariants();
    expect(anon.ref).toBe(1);
    expect(anon.page!.bytes()).toEqual(data);
    expect(anon.swslot).toBe(0);
    uvmUnloanAnons([held]);
    await expectAllFree(k);
  });

  it('a swap read error: EIO (a KernelError), no page left BUSY, and the next access reads it fine', async () => {
    const k = new Kernel({ physPages: 32, swapPages: 256 });
    const data = pattern(25, P);
    const { p, va, anon } = await swappedAnon(k, data);
    hookOnce(
      k,
      (ev) => ev.kind === 'swapin',
      () => {
        throw new Error('bad sector');
      },
    );
    const err = await expectKernelError(uvmLoan(p.map, va, P, 'kernel'), 'EIO');
    expect(err.message).toMatch(/bad sector/);
    k.checkInvariants();
    const s = k.stats();
    expect([s.loanedPages, s.busyPages]).toEqual([0, 0]);
    expect(anon.page).toBeNull();
    expect(anon.swslot).not.toBe(0);
    expect(await p.read(va, P)).toEqual(data);
    const [pg] = await uvmLoan(p.map, va, P, 'kernel');
    expect(pg.bytes()).toEqual(data);
    uvmUnloanPages([pg]);
    await expectAllFree(k);
  });

  it('a loan of an anon page while the pagedaemon is swapping it out gets it back with its bytes', async () => {
    const k = new Kernel({ physPages: 32, swapPages: 256 });
    const p = k.createProcess();
    const va = p.mmap(P);
    const data = pattern(26, P);
    await p.write(va, data);
    const anon = anonAt(p, va)!;
    const target = anon.page!.frame;
    let loaning: Promise<VmPage[]> | null = null;
    k.setIoHook(async (ev) => {
      if (ev.kind === 'swapout' && ev.frame === target && loaning === null) {
        loaning = uvmLoan(p.map, va, P, 'kernel');
        await tick();
      }
    });
    const h = await hog(k, 64);
    await k.idle();
    expect(loaning).not.toBeNull();
    const pages = await loaning!;
    k.setIoHook(null);
    k.checkInvariants();
    expect(pages[0]).toBe(anon.page);
    expect(pages[0].bytes()).toEqual(data);
    expect(pages[0].wireCount).toBe(1);
    h.exit();
    uvmUnloanPages(pages);
    await expectAllFree(k);
  });
});
