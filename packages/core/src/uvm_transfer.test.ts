import { describe, expect, it } from 'vitest';
import { expectErrorSync, expectPanic, frameAt, pattern, useTmpDir, writeFileOf } from '../test/helpers.js';
import {
  Kernel,
  PAGE_SIZE,
  type Proc,
  Prot,
  TRANSFER_REFUSALS,
  type TraceEvent,
  uvmLoanNow,
  uvmPageTransfer,
  uvmPglistAlloc,
  uvmPglistFree,
  uvmTransferCheck,
  uvmUnloanAnons,
  uvmUnloanPages,
  type VmPage,
} from './index.js';
import { PG_CLEAN, PQ_ACTIVE } from './uvm_page.js';

const P = PAGE_SIZE;
const tmp = useTmpDir();

/* filled: a run of n kernel pages, page i holding pattern(P, seed + i) */
function filled(k: Kernel, n: number, seed: number): VmPage[] {
  const run = uvmPglistAlloc(k.uvm, n, { zero: false })!;
  for (let i = 0; i < n; i++) pattern(P, seed + i).copy(run[i].bytes());
  return run;
}

/* snapshot: what a failed call must leave as it was */
function snapshot(k: Kernel, p: Proc) {
  return JSON.stringify({
    stats: k.stats(),
    entries: p.map.entries.map((e) => [e.start, e.end, e.amap?.nused ?? -1, e.needsCopy]),
    resident: p.map.pmap.resident,
    version: p.map.version,
  });
}

describe('uvmPageTransfer', () => {
  it('makes kernel pages the process’s own anonymous memory at va, writable at once, with no copy', async () => {
    const k = new Kernel({ physPages: 64, swapPages: 0 });
    const p = k.createProcess();
    const va = p.mmap(4 * P);
    await p.write(va + P, Buffer.alloc(P, 7));
    const run = filled(k, 4, 10);
    const events: TraceEvent[] = [];
    k.onTrace((ev) => events.push(ev));
    const before = k.stats();
    uvmPageTransfer(p.map, va, run);
    for (let i = 0; i < 4; i++) {
      const pg = run[i];
      expect(frameAt(p, va + i * P)).toBe(pg.frame);
      expect(p.map.pmap.protAt((va + i * P) / P) & Prot.WRITE).toBe(Prot.WRITE);
      expect([pg.anonOwns, pg.uanon?.page === pg, pg.uobject, pg.wireCount, pg.queue]).toEqual([
        true,
        true,
        null,
        0,
        PQ_ACTIVE,
      ]);
      expect(pg.flags & PG_CLEAN).toBe(0);
    }
    expect(await p.read(va, 4 * P)).toEqual(Buffer.concat([0, 1, 2, 3].map((i) => pattern(P, 10 + i))));
    const s = k.stats();
    expect(s.pagesTransferred - before.pagesTransferred).toBe(4);
    expect(s.wiredPages).toBe(before.wiredPages - 4);
    /* the old page of slot 1 was freed; slots 0, 2, 3 had never been touched */
    expect(s.freePages).toBe(before.freePages + 1);
    expect(s.anons).toBe(before.anons + 3);
    expect(events.map((e) => [e.kind, e.frame, e.detail])).toEqual(
      run.map((pg, i) => ['transfer', pg.frame, `0x${(va + i * P).toString(16)}`]),
    );
    const faults = s.faults;
    await p.write(va + 2 * P + 5, Buffer.from('still mine'));
    expect(k.stats().faults).toBe(faults);
    expect(frameAt(p, va + 2 * P)).toBe(run[2].frame);
    k.checkInvariants();
    p.exit();
    expect(k.stats().freePages).toBe(64);
  });

  it('takes part of an entry, and ranges over several entries', async () => {
    const k = new Kernel({ physPages: 64, swapPages: 0 });
    const p = k.createProcess();
    const va = p.mmap(6 * P);
    p.mprotect(va + 2 * P, 2 * P, Prot.READ | Prot.WRITE | Prot.EXEC);
    await p.write(va, pattern(6 * P, 1));
    uvmPageTransfer(p.map, va + P, filled(k, 3, 40));
    expect(await p.read(va, 6 * P)).toEqual(
      Buffer.concat([
        pattern(6 * P, 1).subarray(0, P),
        pattern(P, 40),
        pattern(P, 41),
        pattern(P, 42),
        pattern(6 * P, 1).subarray(4 * P),
      ]),
    );
    k.checkInvariants();
  });

  it('copies a needs-copy amap first, as a write fault would: a forked child keeps the old bytes', async () => {
    const k = new Kernel({ physPages: 64, swapPages: 0 });
    const p = k.createProcess();
    const va = p.mmap(2 * P);
    await p.write(va, pattern(2 * P, 3));
    const c = p.fork();
    uvmPageTransfer(p.map, va, filled(k, 1, 50));
    expect(await p.read(va, 2 * P)).toEqual(Buffer.concat([pattern(P, 50), pattern(2 * P, 3).subarray(P)]));
    expect(await c.read(va, 2 * P)).toEqual(pattern(2 * P, 3));
    k.checkInvariants();
    uvmPageTransfer(c.map, va + P, filled(k, 1, 60));
    expect(await c.read(va + P, P)).toEqual(pattern(P, 60));
    expect(await p.read(va + P, P)).toEqual(pattern(2 * P, 3).subarray(P));
    k.checkInvariants();
    c.exit();
    p.exit();
    expect(k.stats().freePages).toBe(64);
  });

  it('into private memory a fork shares (inherit share): both processes see the new page', async () => {
    const k = new Kernel({ physPages: 64, swapPages: 0 });
    const p = k.createProcess();
    const va = p.mmap(2 * P, { inherit: 'share' });
    await p.write(va, pattern(2 * P, 8));
    const c = p.fork();
    expect(await c.read(va, 2 * P)).toEqual(pattern(2 * P, 8));
    uvmPageTransfer(p.map, va + P, filled(k, 1, 70));
    expect(await c.read(va + P, P)).toEqual(pattern(P, 70));
    await c.write(va + P, Buffer.from('child'));
    expect((await p.read(va + P, 5)).toString()).toBe('child');
    k.checkInvariants();
    c.exit();
    p.exit();
    expect(k.stats().freePages).toBe(64);
  });

  it('replaces what a slot held as freeing it would: a loaned page stays the borrower’s, a paged-out one gives back its swap slot, a pinned one stays pinned', async () => {
    const k = new Kernel({ physPages: 32, swapPages: 64 });
    const p = k.createProcess();
    const n = 40;
    const va = p.mmap(n * P);
    const runs = [200, 201, 202].map((seed) => filled(k, 1, seed));
    for (let i = 0; i < n; i++) await p.write(va + i * P, pattern(P, i));
    const resident = (i: number) => p.map.pmap.extract((va + i * P) / P) >= 0;
    const out = [...Array(n).keys()].find((i) => !resident(i))!;
    const [lent, pinnedAt] = [...Array(n).keys()].filter(resident);
    expect([out, lent, pinnedAt].every((i) => i !== undefined)).toBe(true);
    const loan = uvmLoanNow(p.map, va + lent * P, P, 'kernel')!;
    const pin = uvmLoanNow(p.map, va + pinnedAt * P, P, 'anon')!;
    const before = k.stats();
    uvmPageTransfer(p.map, va + out * P, runs[0]);
    expect(k.stats().swapUsed).toBe(before.swapUsed - 1);
    uvmPageTransfer(p.map, va + lent * P, runs[1]);
    expect(k.stats().orphanPages).toBe(before.orphanPages + 1);
    expect(loan[0].bytes()).toEqual(pattern(P, lent));
    uvmPageTransfer(p.map, va + pinnedAt * P, runs[2]);
    expect(pin[0].page!.bytes()).toEqual(pattern(P, pinnedAt));
    /* a new anon for the pinned slot only: the others took their new pages in place */
    expect(k.stats().anons).toBe(before.anons + 1);
    k.checkInvariants();
    for (const [i, seed] of [
      [out, 200],
      [lent, 201],
      [pinnedAt, 202],
    ])
      expect(await p.read(va + i * P, P)).toEqual(pattern(P, seed));
    uvmUnloanPages(loan);
    uvmUnloanAnons(pin);
    expect(k.stats().orphanPages).toBe(0);
    k.checkInvariants();
    p.exit();
    expect(k.stats().freePages).toBe(32);
  });

  it('refuses a range uvmTransferCheck refuses (EFAULT unmapped or read-only, else EINVAL), changing nothing', async () => {
    const k = new Kernel({ physPages: 64, swapPages: 0 });
    const p = k.createProcess();
    const va = p.mmap(2 * P);
    const ro = p.mmap(P, { prot: Prot.READ });
    const shared = p.mmap(P, { shared: true });
    const run = filled(k, 2, 0);
    const cases: [number, number, 'EFAULT' | 'EINVAL'][] = [
      [va + P, 2, 'EFAULT'],
      [ro, 1, 'EFAULT'],
      [shared, 1, 'EINVAL'],
      [va + 16, 1, 'EINVAL'],
    ];
    for (const [at, n, code] of cases) {
      const before = snapshot(k, p);
      const err = expectErrorSync(() => uvmPageTransfer(p.map, at, run.slice(0, n)), code);
      expect(err.message).toMatch(/^uvm_pagetransfer: /);
      expect(snapshot(k, p)).toBe(before);
    }
    expect(run.every((pg) => pg.uobject === k.uvm.kernelObject && pg.wireCount === 1)).toBe(true);
    expectErrorSync(() => uvmPageTransfer(p.map, va, []), 'EINVAL');
    p.exit();
    expectErrorSync(() => uvmPageTransfer(p.map, va, run), 'EFAULT');
    uvmPglistFree(run);
    k.checkInvariants();
  });

  it('panics, changing nothing, on pages that are not the caller’s kernel pages', async () => {
    const k = new Kernel({ physPages: 64, swapPages: 0 });
    const other = new Kernel({ physPages: 8, swapPages: 0 });
    const p = k.createProcess();
    const va = p.mmap(2 * P);
    await p.write(va + P, Buffer.from('x'));
    const user = k.uvm.pages[frameAt(p, va + P)];
    const run = filled(k, 2, 0);
    const free = k.uvm.free.head!;
    const foreign = uvmPglistAlloc(other.uvm, 1)!;
    for (const [pages, why] of [
      [[run[0], user], /page \d+ isn't kernel memory/],
      [[run[0], run[0]], /listed twice/],
      [[free], /isn't kernel memory/],
      [foreign, /another kernel's/],
    ] as [VmPage[], RegExp][]) {
      const before = snapshot(k, p);
      expectPanic(() => uvmPageTransfer(p.map, va, pages), why);
      expect(snapshot(k, p)).toBe(before);
    }
    expect(run.every((pg) => pg.mark === 0 && pg.wireCount === 1)).toBe(true);
    k.checkInvariants();
  });
});

describe('uvmPageTransfer of a run of consecutive frames (checked in one pass)', () => {
  it('panics, changing nothing, when a page in the middle of the run is no longer kernel memory', () => {
    const k = new Kernel({ physPages: 64, swapPages: 0 });
    const p = k.createProcess();
    const va = p.mmap(4 * P);
    const run = filled(k, 3, 0);
    /* run[1] becomes the process's: the run's frames are still consecutive, its middle page isn't kernel memory */
    uvmPageTransfer(p.map, va + 3 * P, [run[1]]);
    const before = snapshot(k, p);
    expectPanic(
      () => uvmPageTransfer(p.map, va, run),
      new RegExp(`page ${run[1].frame} isn't kernel memory`),
    );
    expectPanic(() => uvmPglistFree(run), new RegExp(`page ${run[1].frame} isn't kernel memory`));
    expect(snapshot(k, p)).toBe(before);
    expect([run[0], run[2]].every((pg) => pg.uobject === k.uvm.kernelObject && pg.wireCount === 1)).toBe(
      true,
    );
    uvmPglistFree([run[0], run[2]]);
    k.checkInvariants();
    p.exit();
    k.checkInvariants();
    expect(k.stats().freePages).toBe(64);
  });

  it('puts each new page in the old page’s place on the active queue, and a page with no old one at the tail', async () => {
    const k = new Kernel({ physPages: 64, swapPages: 0 });
    const p = k.createProcess();
    const va = p.mmap(3 * P);
    await p.write(va, Buffer.alloc(2 * P, 1));
    const queue = () => {
      const out: number[] = [];
      for (let pg = k.uvm.active.head; pg !== null; pg = pg.next) out.push(pg.frame);
      return out;
    };
    const old = [frameAt(p, va), frameAt(p, va + P)];
    const order = queue();
    const run = filled(k, 3, 0);
    uvmPageTransfer(p.map, va, run);
    expect(queue()).toEqual([
      ...order.map((f) => (f === old[0] ? run[0].frame : f === old[1] ? run[1].frame : f)),
      run[2].frame,
    ]);
    k.checkInvariants();
    p.exit();
    k.checkInvariants();
  });
});

describe('uvmTransferCheck', () => {
  it('says why a range cannot take a transfer, in stable words, and null when it can', async () => {
    const k = new Kernel({ physPages: 64, swapPages: 0 });
    const p = k.createProcess();
    const file = await writeFileOf(tmp.dir, 'f', 2 * P, 1);
    const priv = p.mmap(2 * P);
    const ro = p.mmap(P, { prot: Prot.READ });
    const shared = p.mmap(P, { shared: true });
    const fpriv = await p.mmapFile(file, { prot: Prot.READ | Prot.WRITE });
    const fshared = await p.mmapFile(file, { prot: Prot.READ | Prot.WRITE, shared: true });
    const hole = p.mmap(P);
    p.munmap(hole, P);
    const check = (va: number, n: number) => uvmTransferCheck(p.map, va, n);
    expect(check(priv, 2)).toBeNull();
    expect([
      check(priv + 1, 1),
      check(priv + P, 2),
      check(hole, 1),
      check(0x3fff_f000, 2),
      check(ro, 1),
      check(fpriv, 1),
      check(fshared, 1),
      check(shared, 1),
    ]).toEqual([
      'unaligned',
      'not-writable',
      'unmapped',
      'unmapped',
      'not-writable',
      'file-backed',
      'file-backed',
      'shared',
    ]);
    expect(TRANSFER_REFUSALS).toEqual(['unaligned', 'unmapped', 'not-writable', 'file-backed', 'shared']);
    p.exit();
    expect(check(priv, 1)).toBe('unmapped');
    await k.sync();
  });

  it('finds a range fit whose pages are on loan, pinned or shared with a fork (they keep theirs)', async () => {
    const k = new Kernel({ physPages: 64, swapPages: 0 });
    const p = k.createProcess();
    const va = p.mmap(3 * P);
    await p.write(va, Buffer.alloc(3 * P, 1));
    const loaned = uvmLoanNow(p.map, va, P, 'kernel')!;
    const pinned = uvmLoanNow(p.map, va + P, P, 'anon')!;
    const c = p.fork();
    expect(uvmTransferCheck(p.map, va, 3)).toBeNull();
    expect(uvmTransferCheck(c.map, va, 3)).toBeNull();
    uvmUnloanPages(loaned);
    uvmUnloanAnons(pinned);
  });

  it('refuses bad arguments (EINVAL), an unaligned address being a reason, not an error', () => {
    const k = new Kernel({ physPages: 8, swapPages: 0 });
    const p = k.createProcess();
    expectErrorSync(() => uvmTransferCheck({} as never, 0, 1), 'EINVAL');
    expectErrorSync(() => uvmTransferCheck(p.map, -1, 1), 'EINVAL');
    expectErrorSync(() => uvmTransferCheck(p.map, 0, 0), 'EINVAL');
    expect(uvmTransferCheck(p.map, 1, 1)).toBe('unaligned');
  });
});
