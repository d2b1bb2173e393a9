/*
 * Random sequences of loans, copies, frees, user writes, munmaps and exits on random unaligned ranges
 * of anonymous and file-backed memory, checked against a byte model:
 *
 *   - every chain holds exactly the bytes the user's memory held when it was made, until it is freed
 *     (both as the network sees them, the views, and as the kernel reads them, mCopydata)
 *   - the user's memory holds exactly what the user wrote
 *   - a loan over the KVA budget waits, and the frees that make room let it in
 *   - a range that runs into unmapped memory is EFAULT and changes no counter
 *   - kernel.checkInvariants() holds after every step
 *
 * and at the end, with every chain freed and every process gone: nothing loaned, nothing wired but the
 * cluster pool's pages, no KVA in use -- and after draining the pool, every page free.
 */
import { Kernel, PAGE_SIZE, type Proc, Prot } from '@loanout/core';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type Mbuf,
  MCLBYTES,
  mbufCopyin,
  mbufInit,
  mbufLoan,
  mbufStats,
  mbufSystem,
  mCopydata,
  mFreem,
  mLength,
} from '../src/index.js';
import {
  chainBytes,
  counters,
  expectError,
  makeTmpDir,
  pattern,
  removeTmpDir,
  writeFileOf,
} from './helpers.js';

const PHYS_PAGES = 512;
const KVA_BUDGET_PAGES = 8;
const CLUSTER_POOL_PAGES = 16;
const MAX_REGION_PAGES = 6;
const MAX_REGIONS = 8;
const MAX_CHAINS = 8;

interface Region {
  proc: Proc;
  va: number;
  npages: number;
  /* what the user's memory holds, byte for byte */
  bytes: Buffer;
}

interface Chain {
  m: Mbuf;
  want: Buffer;
  loaned: boolean;
  kvaPages: number;
}

type Op =
  | { kind: 'mmap'; proc: number; npages: number; touch: 'none' | 'forward' | 'reverse'; seed: number }
  | { kind: 'mmapFile'; proc: number; file: number }
  | { kind: 'write'; region: number; off: number; len: number; seed: number }
  | { kind: 'loan'; region: number; off: number; len: number }
  | { kind: 'copy'; region: number; off: number; len: number }
  | { kind: 'fault'; region: number; loan: boolean }
  | { kind: 'read'; region: number }
  | { kind: 'free'; chain: number }
  | { kind: 'munmap'; region: number }
  | { kind: 'exit'; proc: number };

/* offsets and lengths: edges of pages often, anything sometimes */
const place = fc.oneof(
  fc.constantFrom(0, 1, PAGE_SIZE - 1, PAGE_SIZE, PAGE_SIZE + 1, 2 * PAGE_SIZE - 1),
  fc.nat({ max: MAX_REGION_PAGES * PAGE_SIZE }),
);

const opArb: fc.Arbitrary<Op> = fc.oneof(
  {
    arbitrary: fc.record({
      kind: fc.constant('mmap' as const),
      proc: fc.nat(),
      npages: fc.integer({ min: 1, max: MAX_REGION_PAGES }),
      touch: fc.constantFrom('none' as const, 'forward' as const, 'reverse' as const),
      seed: fc.nat({ max: 255 }),
    }),
    weight: 3,
  },
  {
    arbitrary: fc.record({ kind: fc.constant('mmapFile' as const), proc: fc.nat(), file: fc.nat() }),
    weight: 1,
  },
  {
    arbitrary: fc.record({
      kind: fc.constant('write' as const),
      region: fc.nat(),
      off: place,
      len: place,
      seed: fc.nat({ max: 255 }),
    }),
    weight: 3,
  },
  {
    arbitrary: fc.record({ kind: fc.constant('loan' as const), region: fc.nat(), off: place, len: place }),
    weight: 5,
  },
  {
    arbitrary: fc.record({ kind: fc.constant('copy' as const), region: fc.nat(), off: place, len: place }),
    weight: 3,
  },
  {
    arbitrary: fc.record({ kind: fc.constant('fault' as const), region: fc.nat(), loan: fc.boolean() }),
    weight: 1,
  },
  { arbitrary: fc.record({ kind: fc.constant('read' as const), region: fc.nat() }), weight: 1 },
  { arbitrary: fc.record({ kind: fc.constant('free' as const), chain: fc.nat() }), weight: 3 },
  { arbitrary: fc.record({ kind: fc.constant('munmap' as const), region: fc.nat() }), weight: 1 },
  { arbitrary: fc.record({ kind: fc.constant('exit' as const), proc: fc.nat() }), weight: 1 },
);

let dir: string | undefined;
const files: { path: string; content: Buffer }[] = [];

beforeAll(async () => {
  dir = await makeTmpDir();
  for (const [i, size] of [PAGE_SIZE + 1, 3 * PAGE_SIZE + 123, 2 * PAGE_SIZE].entries()) {
    const content = pattern(size, 200 + i);
    files.push({ path: await writeFileOf(dir, `file-${i}.bin`, content), content });
  }
});

afterAll(async () => {
  await removeTmpDir(dir);
});

class World {
  readonly k = new Kernel({ physPages: PHYS_PAGES, swapPages: 256 });
  procs: Proc[] = [];
  regions: Region[] = [];
  chains: Chain[] = [];

  constructor() {
    mbufInit(this.k, {
      kvaBudgetBytes: KVA_BUDGET_PAGES * PAGE_SIZE,
      maxClusterBytes: CLUSTER_POOL_PAGES * PAGE_SIZE,
    });
    this.procs = [this.k.createProcess(), this.k.createProcess()];
  }

  /* a range [off, off + len) inside region r, from two arbitrary numbers */
  range(r: Region, a: number, b: number): [number, number] {
    const size = r.npages * PAGE_SIZE;
    const off = a % size;
    const len = 1 + (b % (size - off));
    return [off, len];
  }

  async step(op: Op): Promise<void> {
    switch (op.kind) {
      case 'mmap':
        return this.mmap(op.proc, op.npages, op.touch, op.seed);
      case 'mmapFile':
        return this.mmapFile(op.proc, op.file);
      case 'write':
        return this.write(op.region, op.off, op.len, op.seed);
      case 'loan':
        return this.loan(op.region, op.off, op.len);
      case 'copy':
        return this.copy(op.region, op.off, op.len);
      case 'fault':
        return this.fault(op.region, op.loan);
      case 'read':
        return this.read(op.region);
      case 'free':
        return this.free(op.chain);
      case 'munmap':
        return this.munmap(op.region);
      case 'exit':
        return this.exit(op.proc);
    }
  }

  async mmap(pi: number, npages: number, touch: string, seed: number): Promise<void> {
    if (this.regions.length >= MAX_REGIONS) return;
    const proc = this.procs[pi % this.procs.length];
    const va = proc.mmap(npages * PAGE_SIZE);
    const bytes = Buffer.alloc(npages * PAGE_SIZE);
    if (touch !== 'none') {
      const data = pattern(npages * PAGE_SIZE, seed);
      for (let j = 0; j < npages; j++) {
        const i = touch === 'forward' ? j : npages - 1 - j;
        const page = data.subarray(i * PAGE_SIZE, (i + 1) * PAGE_SIZE);
        await proc.write(va + i * PAGE_SIZE, page);
        page.copy(bytes, i * PAGE_SIZE);
      }
    }
    this.regions.push({ proc, va, npages, bytes });
  }

  async mmapFile(pi: number, fi: number): Promise<void> {
    if (this.regions.length >= MAX_REGIONS) return;
    const proc = this.procs[pi % this.procs.length];
    const f = files[fi % files.length];
    const va = await proc.mmapFile(f.path, { prot: Prot.READ | Prot.WRITE });
    const npages = Math.ceil(f.content.length / PAGE_SIZE);
    const bytes = Buffer.alloc(npages * PAGE_SIZE);
    f.content.copy(bytes);
    this.regions.push({ proc, va, npages, bytes });
  }

  async write(ri: number, a: number, b: number, seed: number): Promise<void> {
    if (this.regions.length === 0) return;
    const r = this.regions[ri % this.regions.length];
    const [off, len] = this.range(r, a, b);
    const data = pattern(len, seed);
    await r.proc.write(r.va + off, data);
    data.copy(r.bytes, off);
  }

  async loan(ri: number, a: number, b: number): Promise<void> {
    if (this.regions.length === 0) return;
    if (this.chains.length >= MAX_CHAINS) this.freeAt(0);
    const r = this.regions[ri % this.regions.length];
    const [off, len] = this.range(r, a, b);
    const want = Buffer.from(r.bytes.subarray(off, off + len));
    const kvaPages =
      Math.floor((r.va + off + len - 1) / PAGE_SIZE) - Math.floor((r.va + off) / PAGE_SIZE) + 1;
    const over = mbufStats(this.k).kvaPagesInUse + kvaPages > KVA_BUDGET_PAGES;
    const pending = mbufLoan(r.proc, r.va + off, len);
    if (over) {
      /* over budget: it waits, holding nothing, until frees of loaned chains make room */
      expect(mbufStats(this.k).kvaWaiting).toBe(1);
      while (mbufStats(this.k).kvaWaiting > 0) {
        const oldest = this.chains.findIndex((c) => c.loaned);
        expect(oldest).toBeGreaterThanOrEqual(0);
        this.freeAt(oldest);
      }
    }
    const m = await pending;
    this.chains.push({ m, want, loaned: true, kvaPages });
  }

  async copy(ri: number, a: number, b: number): Promise<void> {
    if (this.regions.length === 0) return;
    if (this.chains.length >= MAX_CHAINS) this.freeAt(0);
    const r = this.regions[ri % this.regions.length];
    const [off, len] = this.range(r, a, b);
    const capacity = (CLUSTER_POOL_PAGES * PAGE_SIZE) / MCLBYTES;
    while (mbufStats(this.k).clustersInUse + Math.ceil(len / MCLBYTES) > capacity) {
      this.freeAt(this.chains.findIndex((c) => !c.loaned));
    }
    const want = Buffer.from(r.bytes.subarray(off, off + len));
    const m = await mbufCopyin(r.proc, r.va + off, len);
    this.chains.push({ m, want, loaned: false, kvaPages: 0 });
  }

  /* a range from inside a region into unmapped memory past it: EFAULT, and nothing changes */
  async fault(ri: number, loan: boolean): Promise<void> {
    if (this.regions.length === 0) return;
    const r = this.regions[ri % this.regions.length];
    const end = r.va + r.npages * PAGE_SIZE;
    if (r.proc.map.lookup(end) !== null) return;
    if (loan && mbufStats(this.k).kvaPagesInUse + 2 > KVA_BUDGET_PAGES) return;
    if (!loan && mbufStats(this.k).clustersInUse + 1 > mbufSystem(this.k).clusters.capacity) return;
    const before = counters(this.k);
    const call = loan ? mbufLoan : mbufCopyin;
    await expectError(call(r.proc, end - 1, 2), 'EFAULT');
    expect(counters(this.k)).toEqual(before);
  }

  async read(ri: number): Promise<void> {
    if (this.regions.length === 0) return;
    const r = this.regions[ri % this.regions.length];
    expect((await r.proc.read(r.va, r.npages * PAGE_SIZE)).equals(r.bytes)).toBe(true);
  }

  free(ci: number): void {
    if (this.chains.length > 0) this.freeAt(ci % this.chains.length);
  }

  freeAt(i: number): void {
    const [c] = this.chains.splice(i, 1);
    expect(chainBytes(c.m).equals(c.want)).toBe(true);
    mFreem(c.m);
  }

  munmap(ri: number): void {
    if (this.regions.length === 0) return;
    const [r] = this.regions.splice(ri % this.regions.length, 1);
    r.proc.munmap(r.va, r.npages * PAGE_SIZE);
  }

  exit(pi: number): void {
    const i = pi % this.procs.length;
    const proc = this.procs[i];
    proc.exit();
    this.regions = this.regions.filter((r) => r.proc !== proc);
    this.procs[i] = this.k.createProcess();
  }

  /* what must hold after every step */
  check(): void {
    this.k.checkInvariants();
    let kva = 0;
    for (const c of this.chains) {
      expect(mLength(c.m)).toBe(c.want.length);
      expect(chainBytes(c.m).equals(c.want)).toBe(true);
      expect(mCopydata(c.m, 0, c.want.length).equals(c.want)).toBe(true);
      kva += c.kvaPages;
    }
    const s = mbufStats(this.k);
    expect(s.kvaPagesInUse).toBe(kva);
    expect(s.kvaPagesInUse).toBeLessThanOrEqual(KVA_BUDGET_PAGES);
    expect(s.kvaWaiting).toBe(0);
  }

  /* free everything, end every process, and see that every page comes back */
  async teardown(): Promise<void> {
    while (this.chains.length > 0) this.freeAt(0);
    for (const p of this.procs) p.exit();
    this.procs = [];
    this.regions = [];
    await this.k.sync();
    this.k.checkInvariants();
    const s = this.k.stats();
    const m = mbufStats(this.k);
    expect(s.loanedPages).toBe(0);
    expect(s.orphanPages).toBe(0);
    expect(m.kvaPagesInUse).toBe(0);
    expect(m.clustersInUse).toBe(0);
    expect(s.wiredPages).toBe(m.clusterPoolPages);
    expect(s.kernelVaPages).toBe(m.clusterPoolPages);
    mbufSystem(this.k).clusters.drain();
    const after = this.k.stats();
    expect(after.wiredPages).toBe(0);
    expect(after.kernelVaPages).toBe(0);
    expect(after.freePages).toBe(PHYS_PAGES);
    expect(after.anons).toBe(0);
    this.k.checkInvariants();
  }
}

describe('random loans, copies and frees against a byte model', () => {
  it('chains keep their bytes until freed, invariants hold at every step, and every page comes back', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(opArb, { minLength: 5, maxLength: 50, size: 'max' }), async (ops) => {
        const w = new World();
        for (const op of ops) {
          await w.step(op);
          w.check();
        }
        await w.teardown();
      }),
      { numRuns: 50 },
    );
  });
});
