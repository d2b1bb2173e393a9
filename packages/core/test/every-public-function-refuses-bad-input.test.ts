/*
 * Every public function of the core, given a bad value in any one argument, fails with a KernelError
 * naming itself -- never a TypeError, never a value taken modulo 2^32, never silently accepted -- and
 * leaves the kernel exactly as it was. The table holds one good call per function and the kind of each
 * argument; every bad value of that kind is tried in each position in turn, so that a function added
 * to the table is checked against the whole list, and a value added to the list against every function.
 */
import { describe, expect, it } from 'vitest';
import {
  checkKernel,
  checkUserBuffer,
  frameState,
  Kernel,
  KernelError,
  PAGE_SIZE,
  type Proc,
  Prot,
  uvmFault,
  uvmFaultTry,
  uvmKmAllocContig,
  uvmKmAllocPage,
  uvmKmFreePage,
  uvmLoan,
  uvmLoanAnonPages,
  uvmLoanNow,
  uvmLoanTry,
  uvmPageTransfer,
  uvmPglistAlloc,
  uvmPglistFree,
  uvmTransferCheck,
  uvmUnloanAnons,
  uvmUnloanPages,
} from '../src/index.js';
import { useTmpDir, writeFileOf } from './helpers.js';

const P = PAGE_SIZE;
const RW = Prot.READ | Prot.WRITE;

/* the kinds of argument, and the values that are bad for each */
type Kind =
  | 'addr'
  | 'uaddr'
  | 'len'
  | 'count'
  | 'prot'
  | 'access'
  | 'opts'
  | 'path'
  | 'fn'
  | 'object'
  | 'list'
  | 'bytes'
  | 'flag';

const NUMBERS = [Number.NaN, Number.POSITIVE_INFINITY, -1, 0.5, 2 ** 32 + 1, 2 ** 53];
const NOT_NUMBERS = [
  undefined,
  null,
  '4096',
  {},
  [],
  Symbol('bad'),
  Promise.resolve(4096),
  4096n,
  () => 4096,
  new Date(4096),
];

function badValues(kind: Kind): unknown[] {
  switch (kind) {
    case 'addr':
      return [...NUMBERS, P + 1, ...NOT_NUMBERS];
    case 'uaddr':
      return [Number.NaN, Number.POSITIVE_INFINITY, -1, 0.5, 2 ** 53, ...NOT_NUMBERS];
    case 'len':
    case 'count':
      return [...NUMBERS, ...NOT_NUMBERS];
    case 'prot':
      return [Number.NaN, -1, 0.5, 8, 2 ** 32 + 1, 2 ** 32 + 3, ...NOT_NUMBERS];
    case 'access':
      return [0, Number.NaN, -1, 0.5, 8, 2 ** 32 + 1, 2 ** 32 + 3, ...NOT_NUMBERS];
    case 'opts':
      return [null, Number.NaN, -1, '{}', Symbol('bad'), 4096n, () => ({})];
    case 'path':
      return [undefined, null, '', 0, Number.NaN, {}, [], Symbol('bad'), Promise.resolve('x'), 1n, () => 'x'];
    case 'fn':
      return [undefined, null, 0, 'f', {}, [], Symbol('bad'), Promise.resolve(() => 0), 1n];
    case 'object':
      return [undefined, null, 0, Number.NaN, 'x', {}, [], Symbol('bad'), Promise.resolve(), 1n, () => 0];
    case 'list':
      return [
        undefined,
        null,
        0,
        Number.NaN,
        'x',
        {},
        Symbol('bad'),
        Promise.resolve([]),
        1n,
        () => [],
        [undefined],
        [null],
        [{}],
        [0],
        ['x'],
        [Symbol('bad')],
        [Promise.resolve()],
      ];
    case 'flag':
      return [null, 0, 1, Number.NaN, 'true', {}, [], Symbol('bad'), Promise.resolve(true), 1n, () => true];
    case 'bytes':
      return [
        undefined,
        null,
        0,
        'abc',
        {},
        [1, 2],
        Symbol('bad'),
        Promise.resolve(),
        1n,
        new ArrayBuffer(4),
      ];
  }
}

interface World {
  k: Kernel;
  p: Proc;
  /* 4 pages read-write, the first two written */
  rw: number;
  /* a 2-page file mapped read-only */
  file: string;
  fva: number;
  /* a kernel va of 2 pages, unmapped */
  kva: number;
}

function snapshot(w: World) {
  const s = w.k.stats();
  return {
    ...s,
    vnodes: w.k.uvm.vnodes.size,
    entries: w.p.map.entries.map((e) => [e.start, e.end, e.prot, e.maxProt]),
    resident: w.p.map.pmap.resident,
    kernelResident: w.k.uvm.mmu.kernelPmap.resident,
    tracers: w.k.uvm.tracers.length,
    hooks: w.k.uvm.reclaimHooks.length,
    ioHook: w.k.uvm.ioHook,
  };
}

/* one function: its name, the kinds of its arguments, good arguments, and the call */
interface Row {
  name: string;
  kinds: Kind[];
  good: (w: World) => unknown[];
  call: (w: World, args: unknown[]) => unknown;
  /* argument positions where undefined is good (an option left out) */
  optional?: number[];
}

const ROWS: Row[] = [
  {
    name: 'mmap',
    kinds: ['len', 'opts'],
    good: () => [P, {}],
    call: ({ p }, a) => p.mmap(...(a as [number])),
  },
  {
    name: 'mmap prot',
    kinds: ['prot'],
    good: () => [RW],
    call: ({ p }, [prot]) => p.mmap(P, { prot } as never),
    optional: [0],
  },
  {
    name: 'mmapFile',
    kinds: ['path', 'opts'],
    good: (w) => [w.file, {}],
    call: ({ p }, a) => p.mmapFile(...(a as [string])),
  },
  {
    name: 'mmapFile prot, offset, length',
    kinds: ['prot', 'addr', 'len'],
    good: () => [Prot.READ, 0, P],
    call: ({ p, file }, [prot, offset, length]) => p.mmapFile(file, { prot, offset, length } as never),
    optional: [0, 1, 2],
  },
  {
    name: 'munmap',
    kinds: ['addr', 'len'],
    good: (w) => [w.rw, P],
    call: ({ p }, a) => p.munmap(...(a as [number, number])),
  },
  {
    name: 'mprotect',
    kinds: ['addr', 'len', 'prot'],
    good: (w) => [w.rw, P, Prot.READ],
    call: ({ p }, a) => p.mprotect(...(a as [number, number, number])),
  },
  {
    name: 'read',
    kinds: ['addr', 'len'],
    good: (w) => [w.rw, 8],
    call: ({ p }, a) => p.read(...(a as [number, number])),
  },
  {
    name: 'write',
    kinds: ['addr', 'bytes'],
    good: (w) => [w.rw, Buffer.from('x')],
    call: ({ p }, a) => p.write(...(a as [number, Buffer])),
  },
  {
    name: 'copyin',
    kinds: ['addr', 'bytes', 'count', 'len'],
    good: (w) => [w.rw, Buffer.alloc(16), 0, 8],
    call: ({ p }, a) => p.copyin(...(a as [number, Buffer, number, number])),
  },
  {
    name: 'copyinPhys',
    kinds: ['addr', 'len', 'fn'],
    good: (w) => [w.rw, 8, () => undefined],
    call: ({ p }, a) => p.copyinPhys(...(a as [number, number, () => void])),
  },
  {
    name: 'copyinPhysNow',
    kinds: ['addr', 'len', 'fn'],
    good: (w) => [w.rw, 8, () => undefined],
    call: ({ p }, a) => p.copyinPhysNow(...(a as [number, number, () => void])),
  },
  {
    name: 'watch',
    kinds: ['fn'],
    good: () => [() => undefined],
    call: ({ p }, [fn]) => p.watch(fn as () => void),
  },
  {
    name: 'checkRange',
    kinds: ['addr', 'len', 'access'],
    good: (w) => [w.rw, 8, Prot.READ],
    call: ({ p }, [va, n, access]) => p.checkRange('checkRange', va as number, n as number, access as number),
  },
  {
    name: 'uvmLoan',
    kinds: ['object', 'addr', 'len', 'object'],
    good: (w) => [w.p.map, w.rw, P, 'kernel'],
    call: (_w, a) => uvmLoan(...(a as Parameters<typeof uvmLoan>)),
  },
  {
    name: 'uvmLoanTry',
    kinds: ['object', 'addr', 'len', 'object'],
    good: (w) => [w.p.map, w.rw, P, 'anon'],
    call: (_w, a) => uvmLoanTry(...(a as Parameters<typeof uvmLoanTry>)),
  },
  {
    name: 'uvmLoanNow',
    kinds: ['object', 'addr', 'len', 'object'],
    good: (w) => [w.p.map, w.rw, P, 'anon'],
    call: (_w, a) => uvmLoanNow(...(a as Parameters<typeof uvmLoanNow>)),
  },
  {
    name: 'uvmLoanAnonPages',
    kinds: ['list'],
    good: () => [[]],
    call: (_w, [anons]) => uvmLoanAnonPages(anons as never),
  },
  {
    name: 'uvmUnloanPages',
    kinds: ['list'],
    good: () => [[]],
    call: (_w, [pages]) => uvmUnloanPages(pages as never),
  },
  {
    name: 'uvmUnloanAnons',
    kinds: ['list'],
    good: () => [[]],
    call: (_w, [anons]) => uvmUnloanAnons(anons as never),
  },
  {
    name: 'uvmFault',
    kinds: ['object', 'addr', 'access'],
    good: (w) => [w.p.map, w.rw, Prot.READ],
    call: (_w, a) => uvmFault(...(a as [never, number, number])),
  },
  {
    name: 'uvmFaultTry',
    kinds: ['object', 'addr', 'access'],
    good: (w) => [w.p.map, w.rw, Prot.READ],
    call: (_w, a) => uvmFaultTry(...(a as [never, number, number])),
  },
  {
    name: 'checkUserBuffer',
    kinds: ['object', 'uaddr', 'len'],
    good: (w) => [w.p, w.rw, 8],
    call: (_w, [proc, va, len]) =>
      checkUserBuffer('checkUserBuffer', proc as Proc, va as number, len as number),
  },
  {
    name: 'checkKernel',
    kinds: ['object'],
    good: (w) => [w.k],
    call: (_w, [k]) => checkKernel('checkKernel', k),
  },
  { name: 'kva.alloc', kinds: ['count'], good: () => [1], call: ({ k }, [n]) => k.kva.alloc(n as number) },
  {
    name: 'kenter',
    kinds: ['addr', 'list', 'prot'],
    good: (w) => [w.kva, [w.k.uvm.pages[0]], Prot.READ],
    call: ({ k }, a) => k.kenter(...(a as [number, never, number])),
    optional: [2],
  },
  {
    name: 'kremove',
    kinds: ['addr', 'count'],
    good: (w) => [w.kva, 1],
    call: ({ k }, a) => k.kremove(...(a as [number, number])),
  },
  {
    name: 'kread',
    kinds: ['uaddr', 'len'],
    good: (w) => [w.kva, 0],
    call: ({ k }, a) => k.kread(...(a as [number, number])),
  },
  {
    name: 'kwrite',
    kinds: ['uaddr', 'bytes'],
    good: (w) => [w.kva, new Uint8Array(0)],
    call: ({ k }, a) => k.kwrite(...(a as [number, Uint8Array])),
  },
  {
    name: 'onTrace',
    kinds: ['fn'],
    good: () => [() => undefined],
    call: ({ k }, [fn]) => k.onTrace(fn as never)(),
  },
  {
    name: 'addReclaimHook',
    kinds: ['fn'],
    good: () => [() => 0],
    call: ({ k }, [fn]) => k.addReclaimHook(fn as never)(),
  },
  { name: 'frameInfo', kinds: ['count'], good: () => [0], call: ({ k }, [f]) => k.frameInfo(f as number) },
  {
    name: 'frameStates',
    kinds: ['bytes'],
    good: (w) => [new Uint8Array(w.k.uvm.pages.length)],
    call: ({ k }, [out]) => k.frameStates(out as never),
    optional: [0],
  },
  {
    name: 'frameState',
    kinds: ['object'],
    good: (w) => [w.k.uvm.pages[0]],
    call: (_w, [pg]) => frameState(pg as never),
  },
  { name: 'procExited', kinds: ['object'], good: () => [], call: ({ k }, [p]) => k.procExited(p as never) },
  {
    name: 'uvmKmAllocPage',
    kinds: ['object'],
    good: (w) => [w.k.uvm],
    call: (_w, [uvm]) => uvmKmAllocPage(uvm as never),
  },
  {
    name: 'uvmKmAllocContig',
    kinds: ['object', 'count', 'opts'],
    good: (w) => [w.k.uvm, 1, {}],
    call: (_w, a) => uvmKmAllocContig(...(a as [never, number])),
  },
  {
    name: 'uvmPglistAlloc',
    kinds: ['object', 'count', 'opts'],
    good: (w) => [w.k.uvm, 1, {}],
    call: (_w, a) => uvmPglistAlloc(...(a as [never, number])),
  },
  {
    name: 'uvmPglistAlloc zero',
    kinds: ['flag'],
    good: () => [true],
    call: ({ k }, [zero]) => uvmPglistAlloc(k.uvm, 1, { zero } as never),
    optional: [0],
  },
  {
    name: 'uvmPglistFree',
    kinds: ['list'],
    good: () => [[]],
    call: (_w, [pages]) => uvmPglistFree(pages as never),
  },
  {
    name: 'uvmTransferCheck',
    kinds: ['object', 'uaddr', 'count'],
    good: (w) => [w.p.map, w.rw, 1],
    call: (_w, a) => uvmTransferCheck(...(a as [never, number, number])),
  },
  {
    name: 'uvmPageTransfer',
    kinds: ['object', 'addr', 'list'],
    good: (w) => [w.p.map, w.rw, uvmPglistAlloc(w.k.uvm, 1)],
    call: (_w, a) => uvmPageTransfer(...(a as [never, number, never])),
  },
  {
    name: 'uvmKmAllocContig zero',
    kinds: ['flag'],
    good: () => [true],
    call: ({ k }, [zero]) => uvmKmAllocContig(k.uvm, 1, { zero } as never),
    optional: [0],
  },
  {
    name: 'uvmKmFreePage',
    kinds: ['object'],
    good: () => [],
    call: (_w, [pg]) => uvmKmFreePage(pg as never),
  },
  { name: 'new Kernel', kinds: ['opts'], good: () => [{}], call: (_w, [opts]) => new Kernel(opts as never) },
  {
    name: 'new Kernel physPages, swapPages',
    kinds: ['count', 'count'],
    good: () => [16, 0],
    call: (_w, [physPages, swapPages]) => new Kernel({ physPages, swapPages } as never),
    optional: [0, 1],
  },
  {
    name: 'new Kernel diagnostic',
    kinds: ['object'],
    good: () => [true],
    call: (_w, [diagnostic]) => new Kernel({ physPages: 16, diagnostic } as never),
    optional: [0],
  },
];

/* outcome: what the call did -- 'ok', or the error it threw or rejected with */
async function outcome(run: () => unknown): Promise<unknown> {
  try {
    const r = run();
    if (r instanceof Promise) await r;
    return 'ok';
  } catch (err) {
    return err;
  }
}

describe('every public function refuses bad input with a KernelError and changes nothing', () => {
  const tmp = useTmpDir();

  async function world(): Promise<World> {
    const k = new Kernel({ physPages: 32, swapPages: 8 });
    const p = k.createProcess();
    const rw = p.mmap(4 * P);
    await p.write(rw, Buffer.alloc(2 * P, 1));
    const file = await writeFileOf(tmp.dir, 'f', 2 * P, 1);
    const fva = await p.mmapFile(file);
    await p.read(fva, 1);
    const kva = k.kva.alloc(2);
    await k.idle();
    return { k, p, rw, file, fva, kva };
  }

  it.each(ROWS.map((r) => [r.name, r] as const))('%s', async (_name, row) => {
    const w = await world();
    const good = row.good(w);
    const failures: string[] = [];
    for (let i = 0; i < row.kinds.length; i++) {
      for (const bad of badValues(row.kinds[i])) {
        if (bad === undefined && row.optional?.includes(i)) continue;
        const args = [...good];
        args[i] = bad;
        const before = snapshot(w);
        const got = await outcome(() => row.call(w, args));
        const what = `${row.name} argument ${i} = ${describeValue(bad)}`;
        if (!(got instanceof KernelError))
          failures.push(`${what}: ${got instanceof Error ? got.name : String(got)}`);
        else if (!/^[a-zA-Z_]/.test(got.message)) failures.push(`${what}: message ${got.message}`);
        await w.k.idle();
        if (JSON.stringify(snapshot(w)) !== JSON.stringify(before))
          failures.push(`${what}: changed the kernel`);
        w.k.checkInvariants();
      }
    }
    expect(failures).toEqual([]);
    await w.k.shutdown();
    expect(w.k.uvm.vnodes.size).toBe(0);
  });
});

function describeValue(v: unknown): string {
  if (typeof v === 'number') return String(v);
  if (typeof v === 'symbol' || typeof v === 'bigint' || typeof v === 'function') return String(v);
  if (v instanceof Promise) return 'a promise';
  try {
    return JSON.stringify(v) ?? String(v);
  } catch {
    return String(v);
  }
}
