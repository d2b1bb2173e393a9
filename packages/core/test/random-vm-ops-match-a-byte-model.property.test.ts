/*
 * Random sequences of mmap / mmapFile / munmap / mprotect / read / write / fork / exit on several
 * processes, in a kernel small enough that the pagedaemon is always busy, checked step by step
 * against a plain model: per process, a Map from page address to its bytes and protection (pages a
 * fork shares are the same Uint8Array in both maps; pages it copies are copies). The kernel must
 * agree with the model on every byte and every error, pass checkInvariants() after every step, and
 * give back every page when all processes have exited.
 */
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Inherit, type Inheritance, Kernel, KernelError, PAGE_SIZE, type Proc, Prot } from '../src/index.js';
import { makeTmpDir, pattern, removeTmpDir, writeFileOf } from './helpers.js';

const RW = Prot.READ | Prot.WRITE;
const FILE_PAGES = 6;
/* the file ends 100 bytes into its last page: the rest of that page reads as zeros */
const FILE_BYTES = FILE_PAGES * PAGE_SIZE - 100;
const MAX_PROCS = 4;

interface ModelPage {
  data: Uint8Array;
  prot: number;
  inherit: Inheritance;
}

interface ModelProc {
  proc: Proc;
  pages: Map<number, ModelPage>;
  /* every range ever mapped, to aim operations at (possibly no longer mapped) */
  regions: { start: number; pages: number }[];
}

type Op =
  | { kind: 'mmap'; p: number; pages: number; prot: number; inherit: Inheritance; shared: boolean }
  | { kind: 'mmapFile'; p: number; off: number; pages: number; prot: number }
  | { kind: 'munmap'; p: number; r: number; off: number; pages: number }
  | { kind: 'mprotect'; p: number; r: number; off: number; pages: number; prot: number }
  | { kind: 'write'; p: number; r: number; at: number; len: number; seed: number }
  | { kind: 'read'; p: number; r: number; at: number; len: number }
  | { kind: 'fill'; p: number; r: number; seed: number }
  | { kind: 'fork'; p: number }
  | { kind: 'exit'; p: number };

const protArb = fc.constantFrom(Prot.NONE, Prot.READ, RW, Prot.ALL);
const procArb = fc.nat(MAX_PROCS - 1);
const regionArb = fc.nat(7);
const atArb = fc.integer({ min: -200, max: 17 * PAGE_SIZE });

const opArb: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.record({
      kind: fc.constant('mmap' as const),
      p: procArb,
      pages: fc.integer({ min: 1, max: 16 }),
      prot: fc.constantFrom(RW, RW, RW, Prot.READ, Prot.NONE),
      inherit: fc.constantFrom(Inherit.COPY, Inherit.COPY, Inherit.SHARE, Inherit.NONE),
      shared: fc.boolean(),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('mmapFile' as const),
      p: procArb,
      off: fc.nat(FILE_PAGES - 1),
      pages: fc.integer({ min: 1, max: FILE_PAGES }),
      prot: fc.constantFrom(RW, Prot.READ),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('munmap' as const),
      p: procArb,
      r: regionArb,
      off: fc.integer({ min: -1, max: 6 }),
      pages: fc.integer({ min: 1, max: 4 }),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('mprotect' as const),
      p: procArb,
      r: regionArb,
      off: fc.integer({ min: -1, max: 6 }),
      pages: fc.integer({ min: 1, max: 4 }),
      prot: protArb,
    }),
  },
  {
    weight: 5,
    arbitrary: fc.record({
      kind: fc.constant('write' as const),
      p: procArb,
      r: regionArb,
      at: atArb,
      len: fc.integer({ min: 1, max: 2 * PAGE_SIZE }),
      seed: fc.nat(255),
    }),
  },
  {
    weight: 4,
    arbitrary: fc.record({
      kind: fc.constant('read' as const),
      p: procArb,
      r: regionArb,
      at: atArb,
      len: fc.integer({ min: 1, max: 2 * PAGE_SIZE }),
    }),
  },
  {
    weight: 4,
    arbitrary: fc.record({ kind: fc.constant('fill' as const), p: procArb, r: regionArb, seed: fc.nat(255) }),
  },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('fork' as const), p: procArb }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('exit' as const), p: procArb }) },
);

let dir: string;
let file: string;
let fileBytes: Uint8Array;

beforeAll(async () => {
  dir = await makeTmpDir();
  file = await writeFileOf(dir, 'model.bin', FILE_BYTES, 42);
  fileBytes = new Uint8Array(FILE_PAGES * PAGE_SIZE);
  fileBytes.set(pattern(FILE_BYTES, 42));
});

afterAll(async () => {
  await removeTmpDir(dir);
});

/* pagesOf: the model pages [va, va + len) touches, or null if one is missing or forbids `access` */
function pagesOf(m: ModelProc, va: number, len: number, access: number): ModelPage[] | null {
  const out: ModelPage[] = [];
  for (let pva = va - (va % PAGE_SIZE); pva < va + len; pva += PAGE_SIZE) {
    const pg = m.pages.get(pva);
    if (pg === undefined || (pg.prot & access) !== access) return null;
    out.push(pg);
  }
  return out;
}

async function outcome<T>(p: Promise<T> | (() => T)): Promise<{ ok: T } | { err: string }> {
  try {
    return { ok: await (typeof p === 'function' ? p() : p) };
  } catch (err) {
    if (err instanceof KernelError) return { err: err.code };
    throw err;
  }
}

async function step(k: Kernel, procs: ModelProc[], op: Op): Promise<void> {
  if (procs.length === 0) procs.push({ proc: k.createProcess(), pages: new Map(), regions: [] });
  const m = procs[op.p % procs.length];
  const region = 'r' in op ? m.regions[op.r % Math.max(1, m.regions.length)] : undefined;
  switch (op.kind) {
    case 'mmap': {
      const inherit = op.shared && op.inherit === Inherit.COPY ? Inherit.SHARE : op.inherit;
      const va = m.proc.mmap(op.pages * PAGE_SIZE, { prot: op.prot, inherit, shared: op.shared });
      addPages(m, va, op.pages, op.prot, inherit, () => new Uint8Array(PAGE_SIZE));
      return;
    }
    case 'mmapFile': {
      const pages = Math.min(op.pages, FILE_PAGES - op.off);
      const va = await m.proc.mmapFile(file, {
        prot: op.prot,
        offset: op.off * PAGE_SIZE,
        length: pages * PAGE_SIZE,
      });
      addPages(m, va, pages, op.prot, Inherit.COPY, (i) =>
        fileBytes.slice((op.off + i) * PAGE_SIZE, (op.off + i + 1) * PAGE_SIZE),
      );
      return;
    }
    case 'munmap': {
      if (region === undefined) return;
      const start = Math.max(0, region.start + op.off * PAGE_SIZE);
      m.proc.munmap(start, op.pages * PAGE_SIZE);
      for (let i = 0; i < op.pages; i++) m.pages.delete(start + i * PAGE_SIZE);
      return;
    }
    case 'mprotect': {
      if (region === undefined) return;
      const start = Math.max(0, region.start + op.off * PAGE_SIZE);
      const res = await outcome(() => m.proc.mprotect(start, op.pages * PAGE_SIZE, op.prot));
      const all = pagesOf(m, start, op.pages * PAGE_SIZE, Prot.NONE);
      if (all === null) {
        expect(res).toEqual({ err: 'ENOMEM' });
      } else {
        expect(res).toEqual({ ok: undefined });
        for (const pg of all) pg.prot = op.prot;
      }
      return;
    }
    case 'write': {
      if (region === undefined) return;
      const va = Math.max(0, region.start + op.at);
      const bytes = pattern(op.len, op.seed);
      const res = await outcome(m.proc.write(va, bytes));
      const pages = pagesOf(m, va, op.len, Prot.WRITE);
      if (pages === null) {
        expect(res).toEqual({ err: 'EFAULT' });
        return;
      }
      expect(res).toEqual({ ok: undefined });
      let done = 0;
      for (const pg of pages) {
        const off = (va + done) % PAGE_SIZE;
        const n = Math.min(op.len - done, PAGE_SIZE - off);
        pg.data.set(bytes.subarray(done, done + n), off);
        done += n;
      }
      return;
    }
    case 'read': {
      if (region === undefined) return;
      const va = Math.max(0, region.start + op.at);
      const res = await outcome(m.proc.read(va, op.len));
      const pages = pagesOf(m, va, op.len, Prot.READ);
      if (pages === null) {
        expect(res).toEqual({ err: 'EFAULT' });
        return;
      }
      const want = Buffer.alloc(op.len);
      let done = 0;
      for (const pg of pages) {
        const off = (va + done) % PAGE_SIZE;
        const n = Math.min(op.len - done, PAGE_SIZE - off);
        want.set(pg.data.subarray(off, off + n), done);
        done += n;
      }
      expect('ok' in res && Buffer.compare(res.ok, want) === 0).toBe(true);
      return;
    }
    case 'fill': {
      /* write a short run into every page of every region, from region r on (memory pressure) */
      for (let j = 0; j < m.regions.length; j++) {
        const r = (op.r + j) % m.regions.length;
        for (let i = 0; i < m.regions[r].pages; i++) {
          const at = i * PAGE_SIZE + ((op.seed * 97) % (PAGE_SIZE - 64));
          await step(k, procs, { kind: 'write', p: op.p, r, at, len: 64, seed: op.seed + i });
        }
      }
      return;
    }
    case 'fork': {
      if (procs.length >= MAX_PROCS) return;
      const child: ModelProc = { proc: m.proc.fork(), pages: new Map(), regions: [...m.regions] };
      for (const [va, pg] of m.pages) {
        if (pg.inherit === Inherit.NONE) continue;
        const data = pg.inherit === Inherit.SHARE ? pg.data : pg.data.slice();
        child.pages.set(va, { data, prot: pg.prot, inherit: pg.inherit });
      }
      procs.push(child);
      return;
    }
    case 'exit': {
      m.proc.exit();
      procs.splice(procs.indexOf(m), 1);
      return;
    }
  }
}

function addPages(
  m: ModelProc,
  va: number,
  pages: number,
  prot: number,
  inherit: Inheritance,
  data: (i: number) => Uint8Array,
): void {
  expect(va % PAGE_SIZE).toBe(0);
  for (let i = 0; i < pages; i++) {
    expect(m.pages.has(va + i * PAGE_SIZE)).toBe(false);
    m.pages.set(va + i * PAGE_SIZE, { data: data(i), prot, inherit });
  }
  m.regions.push({ start: va, pages });
}

describe('random VM operations match a byte model', () => {
  it('under memory pressure, with swap, on several processes', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 24, max: 48 }),
        fc.array(opArb, { minLength: 40, maxLength: 100 }),
        async (physPages, ops) => {
          const k = new Kernel({ physPages, swapPages: 512 });
          const procs: ModelProc[] = [];
          try {
            for (const op of ops) {
              await step(k, procs, op);
              k.checkInvariants();
            }
            /* one last look at every byte of every process */
            for (const m of procs) {
              for (const [va, pg] of m.pages) {
                if (!(pg.prot & Prot.READ)) continue;
                expect(Buffer.compare(await m.proc.read(va, PAGE_SIZE), pg.data)).toBe(0);
              }
            }
          } finally {
            for (const m of procs) m.proc.exit();
            await k.idle();
          }
          k.checkInvariants();
          expect(k.stats()).toMatchObject({ freePages: physPages, swapUsed: 0, anons: 0, processes: 0 });
          expect(k.uvm.vnodes.size).toBe(0);
        },
      ),
      { numRuns: 50 },
    );
  });
});
