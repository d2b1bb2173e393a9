/*
 * A range pinned by loans to anons keeps its bytes. uvmLoanNow(map, start, len, 'anon') takes the loans
 * now or not at all -- never a sleep -- and the anons it returns hold the bytes of that moment:
 * whatever the process writes afterwards goes to new pages (copy-on-write, or a loan break for a
 * shared object's page). uvmLoanAnonPages later lends those pinned pages to the kernel (A->K),
 * bringing back from swap any the pagedaemon took meanwhile. This is what the socket layer's send
 * rests on: the bytes it sends are the bytes at the call.
 */
import { describe, expect, it } from 'vitest';
import {
  type Anon,
  Kernel,
  KernelError,
  PAGE_SIZE,
  Prot,
  uvmLoanAnonPages,
  uvmLoanNow,
  uvmUnloanAnons,
  uvmUnloanPages,
  type VmPage,
} from '../src/index.js';
import { mappedFile, pattern, useTmpDir } from './helpers.js';

const tmp = useTmpDir();

function bytesOf(pages: VmPage[]): Buffer {
  return Buffer.concat(pages.map((pg) => pg.bytes()));
}

async function loanAnonPages(anons: Anon[]): Promise<VmPage[]> {
  return await uvmLoanAnonPages(anons);
}

describe('uvmLoanNow', () => {
  it('pins anonymous memory, untouched memory and a shared file: later writes do not reach the pins', async () => {
    const {
      k,
      p,
      va: file,
    } = await mappedFile(
      tmp.dir,
      'f',
      2 * PAGE_SIZE,
      3,
      { prot: Prot.READ | Prot.WRITE, shared: true },
      { physPages: 64, swapPages: 0 },
    );
    const anon = p.mmap(2 * PAGE_SIZE);
    const data = pattern(2 * PAGE_SIZE, 4);
    await p.write(anon, data);
    const untouched = p.mmap(PAGE_SIZE);
    await p.read(file, 2 * PAGE_SIZE);
    const pins = [anon, untouched, file].map((va, i) =>
      uvmLoanNow(p.map, va, (i === 1 ? 1 : 2) * PAGE_SIZE, 'anon'),
    );
    expect(pins.every((x) => x !== null)).toBe(true);
    await p.write(anon, Buffer.alloc(2 * PAGE_SIZE, 1));
    await p.write(untouched, Buffer.alloc(PAGE_SIZE, 2));
    await p.write(file, Buffer.alloc(2 * PAGE_SIZE, 3));
    const pages = await Promise.all(pins.map((x) => loanAnonPages(x!)));
    expect(bytesOf(pages[0]).equals(data)).toBe(true);
    expect(bytesOf(pages[1]).equals(Buffer.alloc(PAGE_SIZE))).toBe(true);
    expect(bytesOf(pages[2]).equals(pattern(2 * PAGE_SIZE, 3))).toBe(true);
    expect((await p.read(file, 4)).equals(Buffer.alloc(4, 3))).toBe(true);
    k.checkInvariants();
    for (const x of pages) uvmUnloanPages(x);
    for (const x of pins) uvmUnloanAnons(x!);
    k.checkInvariants();
    p.exit();
    await k.idle();
    expect(k.stats()).toMatchObject({ loanedPages: 0, anons: 0 });
    k.checkInvariants();
  });

  it('returns null, having loaned nothing, when a page would need I/O (a file page not yet read)', async () => {
    const { k, p, va } = await mappedFile(tmp.dir, 'f', 3 * PAGE_SIZE, 5);
    await p.read(va, PAGE_SIZE);
    const before = k.stats();
    expect(uvmLoanNow(p.map, va, 3 * PAGE_SIZE, 'anon')).toBeNull();
    expect(uvmLoanNow(p.map, va, 3 * PAGE_SIZE, 'kernel')).toBeNull();
    expect(k.stats()).toMatchObject({ loanedPages: 0, anons: before.anons, wiredPages: before.wiredPages });
    k.checkInvariants();
    p.exit();
    await k.idle();
  });

  it('throws what uvmLoan throws (EINVAL, EFAULT), taking nothing', () => {
    const k = new Kernel({ physPages: 32 });
    const p = k.createProcess();
    const va = p.mmap(PAGE_SIZE);
    expect(() => uvmLoanNow(p.map, va + 1, PAGE_SIZE, 'anon')).toThrow(KernelError);
    expect(() => uvmLoanNow(p.map, va, 2 * PAGE_SIZE, 'anon')).toThrow(/not mapped/);
    expect(k.stats().anons).toBe(0);
    k.checkInvariants();
  });
});

describe('uvmLoanAnonPages', () => {
  it('brings pinned pages back from swap, loans them, and keeps their bytes', async () => {
    const k = new Kernel({ physPages: 48, swapPages: 256 });
    const p = k.createProcess();
    const va = p.mmap(8 * PAGE_SIZE);
    const data = pattern(8 * PAGE_SIZE, 6);
    await p.write(va, data);
    const anons = uvmLoanNow(p.map, va, 8 * PAGE_SIZE, 'anon')!;
    await p.write(va, Buffer.alloc(8 * PAGE_SIZE, 9));
    /* push everything out: another process takes most of RAM */
    const q = k.createProcess();
    const big = q.mmap(44 * PAGE_SIZE);
    await q.write(big, Buffer.alloc(44 * PAGE_SIZE, 7));
    expect(k.stats().pageouts).toBeGreaterThan(0);
    const r = uvmLoanAnonPages(anons);
    const pages = await r;
    expect(bytesOf(pages).equals(data)).toBe(true);
    expect(pages.every((pg) => pg.loanCount >= 1 && pg.wireCount >= 1)).toBe(true);
    k.checkInvariants();
    uvmUnloanPages(pages);
    uvmUnloanAnons(anons);
    p.exit();
    q.exit();
    await k.idle();
    expect(k.stats()).toMatchObject({ loanedPages: 0, anons: 0, wiredPages: 0 });
    k.checkInvariants();
  });

  it('refuses what is not an anon the caller holds with EINVAL, loaning nothing', () => {
    const k = new Kernel({ physPages: 32 });
    const p = k.createProcess();
    const va = p.mmap(PAGE_SIZE);
    const [a] = uvmLoanNow(p.map, va, PAGE_SIZE, 'anon')!;
    for (const bad of [null, 7, [a, {}], [a, null], 'x']) {
      expect(() => uvmLoanAnonPages(bad as never)).toThrow(KernelError);
    }
    uvmUnloanAnons([a]);
    expect(() => uvmLoanAnonPages([a])).toThrow(/not an anon the caller holds/);
    expect(k.stats().loanedPages).toBe(0);
    p.exit();
    k.checkInvariants();
  });
});
