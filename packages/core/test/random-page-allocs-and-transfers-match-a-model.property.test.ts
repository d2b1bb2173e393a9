/*
 * Random sequences of contiguous kernel allocations and frees (uvmPglistAlloc / uvmPglistFree, runs of
 * 1 to 40 pages, zeroed or not), page transfers into processes (uvmPageTransfer, checked first with
 * uvmTransferCheck), user writes, kernel loans and pins (uvmLoan 'kernel', uvmLoanNow 'anon'), mmap,
 * munmap, fork and exit, on a RAM that is not a power of two, checked step by step against a model:
 *
 *   bytes      per process, each page's bytes (a fork copies private pages and shares shared ones);
 *              a transfer puts the kernel page's bytes there; loans and pins keep what they took
 *   runs       a run is had exactly when an oracle says so: whenever an aligned block of
 *              2^ceil(log2 n) frames is all free the allocator must find a run; any run it gives
 *              is n contiguous frames that were all free
 *   refusals   uvmTransferCheck's reason is the one the model predicts (unaligned, not-writable,
 *              shared), and uvmPageTransfer then refuses with the matching code, changing nothing
 *
 * with checkInvariants() (free lists included) after every step, and at the end, everything let go,
 * every page free again and merged back: one run of all of RAM can be had.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  type Anon,
  Kernel,
  KernelError,
  PAGE_SIZE,
  type Proc,
  Prot,
  uvmLoan,
  uvmLoanAnonPages,
  uvmLoanNow,
  uvmPageTransfer,
  uvmPglistAlloc,
  uvmPglistFree,
  uvmTransferCheck,
  uvmUnloanAnons,
  uvmUnloanPages,
  type VmPage,
} from '../src/index.js';
import { PQ_FREE } from '../src/uvm_page.js';
import { pattern } from './helpers.js';

const P = PAGE_SIZE;
/* 256 + 32 + 8 + 4 pages: blocks of several orders at boot, and runs that must span them */
const RAM = 300;
const MAX_PROCS = 3;
const MAX_REGIONS = 4;
const MAX_HELD = 64;

/* private copy-on-write; read-only; shared (an aobj); private but inherited shared (one amap for both
   sides of a fork: a transfer is seen by both) */
type Kind = 'private' | 'readonly' | 'shared' | 'inherit-share';

interface Region {
  va: number;
  pages: number;
  kind: Kind;
}

interface ModelProc {
  proc: Proc;
  regions: Region[];
  /* bytes of touched pages by page address (untouched private pages read as zeros) */
  data: Map<number, Uint8Array>;
}

interface Run {
  pages: VmPage[];
  bytes: Buffer[];
}

interface Borrow {
  kind: 'kernel' | 'pin';
  pages: VmPage[];
  anons: Anon[];
  want: Buffer;
}

type Op =
  | { op: 'mmap'; p: number; pages: number; kind: Kind }
  | { op: 'write'; p: number; r: number; page: number; seed: number }
  | { op: 'fork'; p: number }
  | { op: 'exit'; p: number }
  | { op: 'munmap'; p: number; r: number }
  | { op: 'kalloc'; n: number; zero: boolean; seed: number }
  | { op: 'kfree'; i: number; from: number; count: number }
  | { op: 'transfer'; p: number; r: number; off: number; i: number; count: number; unaligned: boolean }
  | { op: 'borrow'; p: number; r: number; kind: 'kernel' | 'pin' }
  | { op: 'giveback'; i: number }
  | { op: 'check'; p: number; r: number };

const pick = fc.nat(15);
const opArb: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 3,
    arbitrary: fc.record({
      op: fc.constant('mmap' as const),
      p: pick,
      pages: fc.integer({ min: 1, max: 6 }),
      kind: fc.constantFrom<Kind>('private', 'private', 'private', 'readonly', 'shared', 'inherit-share'),
    }),
  },
  {
    weight: 3,
    arbitrary: fc.record({
      op: fc.constant('write' as const),
      p: pick,
      r: pick,
      page: pick,
      seed: fc.nat(255),
    }),
  },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('fork' as const), p: pick }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('exit' as const), p: pick }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('munmap' as const), p: pick, r: pick }) },
  {
    weight: 4,
    arbitrary: fc.record({
      op: fc.constant('kalloc' as const),
      n: fc.constantFrom(1, 1, 1, 2, 3, 4, 5, 7, 8, 16, 24, 40),
      zero: fc.boolean(),
      seed: fc.nat(255),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      op: fc.constant('kfree' as const),
      i: pick,
      from: pick,
      count: fc.integer({ min: 1, max: 40 }),
    }),
  },
  {
    weight: 4,
    arbitrary: fc.record({
      op: fc.constant('transfer' as const),
      p: pick,
      r: pick,
      off: pick,
      i: pick,
      count: fc.integer({ min: 1, max: 6 }),
      unaligned: fc.nat(4).map((x) => x === 0),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      op: fc.constant('borrow' as const),
      p: pick,
      r: pick,
      kind: fc.constantFrom<'kernel' | 'pin'>('kernel', 'pin'),
    }),
  },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('giveback' as const), i: pick }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('check' as const), p: pick, r: pick }) },
);

class World {
  readonly k = new Kernel({ physPages: RAM, swapPages: 0 });
  readonly procs: ModelProc[] = [];
  readonly runs: Run[] = [];
  readonly borrows: Borrow[] = [];
  /* a listener that checks the books at every event of a transfer: it must never see one half done */
  transferring = false;
  readonly broken: string[] = [];

  constructor() {
    this.procs.push({ proc: this.k.createProcess(), regions: [], data: new Map() });
    this.k.onTrace((ev) => {
      if (!this.transferring) return;
      try {
        this.k.checkInvariants();
      } catch (err) {
        this.broken.push(`${ev.kind}: ${(err as Error).message}`);
      }
    });
  }

  proc(i: number): ModelProc | undefined {
    return this.procs.length === 0 ? undefined : this.procs[i % this.procs.length];
  }

  region(mp: ModelProc, r: number): Region | undefined {
    return mp.regions.length === 0 ? undefined : mp.regions[r % mp.regions.length];
  }

  held(): number {
    return this.runs.reduce((n, run) => n + run.pages.length, 0);
  }

  /* expected: the model's bytes of a region */
  expected(mp: ModelProc, reg: Region): Buffer {
    const out = Buffer.alloc(reg.pages * P);
    for (let i = 0; i < reg.pages; i++) {
      const d = mp.data.get(reg.va + i * P);
      if (d !== undefined) out.set(d, i * P);
    }
    return out;
  }

  async step(o: Op): Promise<void> {
    switch (o.op) {
      case 'mmap':
        return this.mmap(o.p, o.pages, o.kind);
      case 'write':
        return this.write(o.p, o.r, o.page, o.seed);
      case 'fork':
        return this.fork(o.p);
      case 'exit':
        return this.exit(o.p);
      case 'munmap':
        return this.munmap(o.p, o.r);
      case 'kalloc':
        return this.kalloc(o.n, o.zero, o.seed);
      case 'kfree':
        return this.kfree(o.i, o.from, o.count);
      case 'transfer':
        return this.transfer(o);
      case 'borrow':
        return this.borrow(o.p, o.r, o.kind);
      case 'giveback':
        return this.giveback(o.i);
      case 'check':
        return this.check(o.p, o.r);
    }
  }

  mmap(p: number, pages: number, kind: Kind): void {
    const mp = this.proc(p);
    if (mp === undefined || mp.regions.length >= MAX_REGIONS) return;
    const prot = kind === 'readonly' ? Prot.READ : Prot.READ | Prot.WRITE;
    const inherit = kind === 'inherit-share' ? 'share' : undefined;
    const va = mp.proc.mmap(pages * P, { prot, shared: kind === 'shared', inherit });
    mp.regions.push({ va, pages, kind });
    /* a shared page is one array for every process that maps it, from the start */
    if (sharedKind(kind)) for (let i = 0; i < pages; i++) mp.data.set(va + i * P, new Uint8Array(P));
  }

  async write(p: number, r: number, page: number, seed: number): Promise<void> {
    const mp = this.proc(p);
    const reg = mp && this.region(mp, r);
    if (mp === undefined || reg === undefined) return;
    const va = reg.va + (page % reg.pages) * P;
    const bytes = pattern(P, seed);
    if (reg.kind === 'readonly') {
      await expect(mp.proc.write(va, bytes)).rejects.toMatchObject({ code: 'EFAULT' });
      return;
    }
    await mp.proc.write(va, bytes);
    if (sharedKind(reg.kind)) mp.data.get(va)!.set(bytes);
    else mp.data.set(va, new Uint8Array(bytes));
  }

  fork(p: number): void {
    const mp = this.proc(p);
    if (mp === undefined || this.procs.length >= MAX_PROCS) return;
    const data = new Map<number, Uint8Array>();
    const shared = new Set(mp.regions.filter((r) => sharedKind(r.kind)).map((r) => r.va));
    for (const [va, d] of mp.data) {
      const inShared = mp.regions.some((r) => shared.has(r.va) && va >= r.va && va < r.va + r.pages * P);
      data.set(va, inShared ? d : new Uint8Array(d));
    }
    this.procs.push({ proc: mp.proc.fork(), regions: mp.regions.map((r) => ({ ...r })), data });
  }

  exit(p: number): void {
    const mp = this.proc(p);
    if (mp === undefined) return;
    mp.proc.exit();
    this.procs.splice(this.procs.indexOf(mp), 1);
  }

  munmap(p: number, r: number): void {
    const mp = this.proc(p);
    const reg = mp && this.region(mp, r);
    if (mp === undefined || reg === undefined) return;
    mp.proc.munmap(reg.va, reg.pages * P);
    mp.regions.splice(mp.regions.indexOf(reg), 1);
    for (let i = 0; i < reg.pages; i++) mp.data.delete(reg.va + i * P);
  }

  kalloc(n: number, zero: boolean, seed: number): void {
    if (this.held() + n > MAX_HELD) return;
    const uvm = this.k.uvm;
    const wasFree = uvm.pages.map((pg) => pg.queue === PQ_FREE);
    const mustFind = alignedFreeBlock(wasFree, n);
    const run = uvmPglistAlloc(uvm, n, { zero });
    if (run === null) {
      expect(mustFind).toBe(false);
      return;
    }
    expect(run.length).toBe(n);
    const bytes: Buffer[] = [];
    for (let i = 0; i < n; i++) {
      const pg = run[i];
      expect(pg.frame).toBe(run[0].frame + i);
      expect(wasFree[pg.frame]).toBe(true);
      if (zero) expect(pg.bytes().every((b) => b === 0)).toBe(true);
      const b = pattern(P, seed + i);
      b.copy(pg.bytes());
      bytes.push(b);
    }
    this.runs.push({ pages: run, bytes });
  }

  kfree(i: number, from: number, count: number): void {
    if (this.runs.length === 0) return;
    const run = this.runs[i % this.runs.length];
    const start = from % run.pages.length;
    const pages = run.pages.splice(start, count);
    run.bytes.splice(start, count);
    uvmPglistFree(pages);
    if (run.pages.length === 0) this.runs.splice(this.runs.indexOf(run), 1);
  }

  transfer(o: Extract<Op, { op: 'transfer' }>): void {
    const mp = this.proc(o.p);
    const reg = mp && this.region(mp, o.r);
    if (mp === undefined || reg === undefined) return;
    /* the receive area refills when it has nothing left to give */
    if (this.runs.length === 0) this.kalloc(o.count, false, o.i);
    if (this.runs.length === 0) return;
    const run = this.runs[o.i % this.runs.length];
    const off = o.off % reg.pages;
    const count = Math.min(o.count, reg.pages - off, run.pages.length);
    const va = reg.va + off * P + (o.unaligned ? 8 : 0);
    const want = o.unaligned
      ? 'unaligned'
      : reg.kind === 'readonly'
        ? 'not-writable'
        : reg.kind === 'shared'
          ? 'shared'
          : null;
    expect(uvmTransferCheck(mp.proc.map, va, count)).toBe(want);
    const pages = run.pages.slice(0, count);
    if (want !== null) {
      const free = this.k.stats().freePages;
      let err: unknown = null;
      try {
        uvmPageTransfer(mp.proc.map, va, pages);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(KernelError);
      expect((err as KernelError).code).toBe(want === 'not-writable' ? 'EFAULT' : 'EINVAL');
      expect(this.k.stats().freePages).toBe(free);
      expect(pages.every((pg) => pg.uobject === this.k.uvm.kernelObject)).toBe(true);
      return;
    }
    this.transferring = true;
    try {
      uvmPageTransfer(mp.proc.map, va, pages);
    } finally {
      this.transferring = false;
    }
    expect(this.broken).toEqual([]);
    run.pages.splice(0, count);
    const bytes = run.bytes.splice(0, count);
    for (let j = 0; j < count; j++) {
      if (sharedKind(reg.kind)) mp.data.get(va + j * P)!.set(bytes[j]);
      else mp.data.set(va + j * P, new Uint8Array(bytes[j]));
    }
    if (run.pages.length === 0) this.runs.splice(this.runs.indexOf(run), 1);
  }

  async borrow(p: number, r: number, kind: 'kernel' | 'pin'): Promise<void> {
    const mp = this.proc(p);
    const reg = mp && this.region(mp, r);
    if (mp === undefined || reg === undefined || this.borrows.length >= 3) return;
    const want = this.expected(mp, reg);
    if (kind === 'kernel') {
      const pages = await uvmLoan(mp.proc.map, reg.va, reg.pages * P, 'kernel');
      this.borrows.push({ kind, pages, anons: [], want });
    } else {
      const anons = uvmLoanNow(mp.proc.map, reg.va, reg.pages * P, 'anon');
      expect(anons).not.toBeNull();
      this.borrows.push({ kind, pages: [], anons: anons!, want });
    }
  }

  async giveback(i: number): Promise<void> {
    if (this.borrows.length === 0) return;
    const b = this.borrows.splice(i % this.borrows.length, 1)[0];
    await this.verifyBorrow(b);
    if (b.kind === 'kernel') uvmUnloanPages(b.pages);
    else uvmUnloanAnons(b.anons);
  }

  async verifyBorrow(b: Borrow): Promise<void> {
    const pages = b.kind === 'kernel' ? b.pages : await uvmLoanAnonPages(b.anons);
    expect(Buffer.concat(pages.map((pg) => Buffer.from(pg.bytes())))).toEqual(b.want);
    if (b.kind === 'pin') uvmUnloanPages(pages);
  }

  async check(p: number, r: number): Promise<void> {
    const mp = this.proc(p);
    const reg = mp && this.region(mp, r);
    if (mp === undefined || reg === undefined) return;
    expect(await mp.proc.read(reg.va, reg.pages * P)).toEqual(this.expected(mp, reg));
  }

  async finish(): Promise<void> {
    for (const mp of this.procs) {
      for (const reg of mp.regions)
        expect(await mp.proc.read(reg.va, reg.pages * P)).toEqual(this.expected(mp, reg));
    }
    while (this.borrows.length > 0) await this.giveback(0);
    for (const run of this.runs) uvmPglistFree(run.pages);
    for (const mp of this.procs) mp.proc.exit();
    await this.k.idle();
    this.k.checkInvariants();
    expect(this.k.stats()).toMatchObject({ freePages: RAM, wiredPages: 0, anons: 0 });
    const all = uvmPglistAlloc(this.k.uvm, RAM);
    expect(all?.[0].frame).toBe(0);
    uvmPglistFree(all!);
  }
}

/* sharedKind: are a region's pages the same for both sides of a fork? */
function sharedKind(kind: Kind): boolean {
  return kind === 'shared' || kind === 'inherit-share';
}

/* alignedFreeBlock: is some aligned block of 2^ceil(log2 n) frames all free? (the allocator must find one then) */
function alignedFreeBlock(free: boolean[], n: number): boolean {
  let size = 1;
  while (size < n) size *= 2;
  for (let f = 0; f + size <= free.length; f += size) {
    let all = true;
    for (let i = f; i < f + size && all; i++) all = free[i];
    if (all) return true;
  }
  return false;
}

describe('random page allocations, frees and transfers match a model', () => {
  it('with loans, pins, fork, exit and munmap, on a RAM that is not a power of two', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(opArb, { minLength: 5, maxLength: 32 }), async (ops) => {
        const w = new World();
        for (const o of ops) {
          await w.step(o);
          w.k.checkInvariants();
        }
        await w.finish();
      }),
      { numRuns: 25 },
    );
  });
});
