/*
 * Every bad input a caller can give a public entry point fails with its KernelError code, and leaves
 * the kernel exactly as it was: no page, anon, swap slot, map entry, kernel va or vnode left behind.
 */
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  Kernel,
  type KernelErrorCode,
  type KernelOptions,
  MAX_PHYS_PAGES,
  type MmapFileOptions,
  type MmapOptions,
  PAGE_SIZE,
  type Proc,
  Prot,
  VM_MAX_ADDRESS,
  type VmPage,
} from '../src/index.js';
import {
  expectError,
  expectErrorSync,
  makeTmpDir,
  readOnlyFile,
  removeTmpDir,
  writeFileOf,
} from './helpers.js';

const RW = Prot.READ | Prot.WRITE;

interface World {
  k: Kernel;
  p: Proc;
  /* 4 pages RW, first two written */
  rw: number;
  /* 2 pages READ, first one read */
  ro: number;
  /* 1 page NONE */
  none: number;
  /* a 1-page hole between ro and none */
  hole: number;
  /* a shared read-only mapping of a read-only file */
  rofile: number;
}

let dir: string;
let file: string;
let empty: string;
let sub: string;
let roFile: string;

beforeAll(async () => {
  dir = await makeTmpDir();
  file = await writeFileOf(dir, 'file', 3 * PAGE_SIZE, 1);
  empty = await writeFileOf(dir, 'empty', 0, 0);
  sub = path.join(dir, 'sub');
  await mkdir(sub);
  roFile = await readOnlyFile(dir);
});

afterAll(async () => {
  await removeTmpDir(dir);
});

/* the running test's world: its process maps a file, so after the test the kernel is shut down and
   closes the file (a dropped kernel's files would be closed by the garbage collector, with a warning) */
let live: World | null = null;

afterEach(async () => {
  if (live === null) return;
  const { k } = live;
  live = null;
  await k.shutdown();
  expect(k.uvm.vnodes.size).toBe(0);
});

async function world(): Promise<World> {
  const k = new Kernel({ physPages: 32, swapPages: 8 });
  const p = k.createProcess();
  const rw = p.mmap(4 * PAGE_SIZE);
  await p.write(rw, Buffer.alloc(2 * PAGE_SIZE, 1));
  const ro = p.mmap(2 * PAGE_SIZE, { prot: Prot.READ });
  await p.read(ro, 1);
  const hole = p.mmap(PAGE_SIZE);
  const none = p.mmap(PAGE_SIZE, { prot: Prot.NONE });
  const rofile = await p.mmapFile(roFile, { shared: true, length: PAGE_SIZE });
  await p.read(rofile, 1);
  p.munmap(hole, PAGE_SIZE);
  await k.idle();
  live = { k, p, rw, ro, none, hole, rofile };
  return live;
}

function snapshot(w: World) {
  const s = w.k.stats();
  return {
    freePages: s.freePages,
    activePages: s.activePages,
    inactivePages: s.inactivePages,
    anons: s.anons,
    swapUsed: s.swapUsed,
    kernelVaPages: s.kernelVaPages,
    processes: s.processes,
    vnodes: w.k.uvm.vnodes.size,
    entries: w.p.map.entries.map((e) => [e.start, e.end, e.prot]),
    resident: w.p.map.pmap.resident,
    kernelResident: w.k.uvm.mmu.kernelPmap.resident,
  };
}

type Call = (w: World) => unknown;

const syncCases: [string, KernelErrorCode, Call][] = [
  ['mmap of length 0', 'EINVAL', ({ p }) => p.mmap(0)],
  ['mmap of a negative length', 'EINVAL', ({ p }) => p.mmap(-PAGE_SIZE)],
  ['mmap of a NaN length', 'EINVAL', ({ p }) => p.mmap(Number.NaN)],
  ['mmap of a fractional length', 'EINVAL', ({ p }) => p.mmap(PAGE_SIZE + 0.5)],
  ['mmap of a huge length', 'EINVAL', ({ p }) => p.mmap(2 ** 53)],
  ['mmap of all of user space', 'ENOMEM', ({ p }) => p.mmap(VM_MAX_ADDRESS)],
  ['mmap with bad protection', 'EINVAL', ({ p }) => p.mmap(PAGE_SIZE, { prot: 0x10 })],
  [
    'mmap with a bad inheritance',
    'EINVAL',
    ({ p }) => p.mmap(PAGE_SIZE, { inherit: 'fork' } as unknown as MmapOptions),
  ],
  ['mmap with null options', 'EINVAL', ({ p }) => p.mmap(PAGE_SIZE, null as unknown as MmapOptions)],
  ['munmap of an unaligned address', 'EINVAL', ({ p, rw }) => p.munmap(rw + 1, PAGE_SIZE)],
  ['munmap of length 0', 'EINVAL', ({ p, rw }) => p.munmap(rw, 0)],
  ['munmap of a negative length', 'EINVAL', ({ p, rw }) => p.munmap(rw, -1)],
  ['munmap of a NaN address', 'EINVAL', ({ p }) => p.munmap(Number.NaN, PAGE_SIZE)],
  ['munmap of a huge length', 'EINVAL', ({ p, rw }) => p.munmap(rw, 2 ** 40)],
  ['mprotect of an unaligned address', 'EINVAL', ({ p, rw }) => p.mprotect(rw + 8, PAGE_SIZE, Prot.READ)],
  ['mprotect of length 0', 'EINVAL', ({ p, rw }) => p.mprotect(rw, 0, Prot.READ)],
  ['mprotect of a fractional length', 'EINVAL', ({ p, rw }) => p.mprotect(rw, 1.5, Prot.READ)],
  ['mprotect with bad protection', 'EINVAL', ({ p, rw }) => p.mprotect(rw, PAGE_SIZE, 9)],
  ['mprotect of a hole', 'ENOMEM', ({ p, hole }) => p.mprotect(hole, PAGE_SIZE, Prot.READ)],
  ['mprotect across a hole', 'ENOMEM', ({ p, ro }) => p.mprotect(ro, 4 * PAGE_SIZE, Prot.READ)],
  ['mprotect far beyond every mapping', 'ENOMEM', ({ p }) => p.mprotect(0x3000_0000, PAGE_SIZE, Prot.READ)],
  ['mprotect beyond maxProt', 'EACCES', ({ p, rofile }) => p.mprotect(rofile, PAGE_SIZE, RW)],
  ['kva.alloc of 0 pages', 'EINVAL', ({ k }) => k.kva.alloc(0)],
  ['kva.alloc of -3 pages', 'EINVAL', ({ k }) => k.kva.alloc(-3)],
  ['kva.alloc of NaN pages', 'EINVAL', ({ k }) => k.kva.alloc(Number.NaN)],
  ['kva.alloc of more than kernel space', 'ENOMEM', ({ k }) => k.kva.alloc(2 ** 30)],
  ['kva.free of an unaligned address', 'EINVAL', ({ k }) => k.kva.free(0x8000_0001, 1)],
  ['kenter at an unaligned address', 'EINVAL', ({ k }) => k.kenter(0x8000_0010, [k.uvm.pages[0]])],
  ['kenter with bad protection', 'EINVAL', ({ k }) => k.kenter(0x8000_0000, [k.uvm.pages[0]], -1)],
  ['kenter of something not a page', 'EINVAL', ({ k }) => k.kenter(0x8000_0000, [{} as VmPage])],
  ['kenter far above kernel space', 'EINVAL', ({ k }) => k.kenter(PAGE_SIZE * 2 ** 40, [k.uvm.pages[0]])],
  ['kenter below kernel space', 'EINVAL', ({ k }) => k.kenter(0x1000_0000, [k.uvm.pages[0]])],
  [
    "kenter of another kernel's page",
    'EINVAL',
    ({ k }) => k.kenter(0x8000_0000, [new Kernel({ physPages: 4 }).uvm.pages[0]]),
  ],
  ['kremove running past kernel space', 'EINVAL', ({ k }) => k.kremove(0x8000_0000, 2 ** 30)],
  ['kremove at an unaligned address', 'EINVAL', ({ k }) => k.kremove(0x8000_0010, 1)],
  ['kremove of a negative count', 'EINVAL', ({ k }) => k.kremove(0x8000_0000, -1)],
  ['kread of a negative length', 'EINVAL', ({ k }) => k.kread(0x8000_0000, -1)],
  ['kwrite of a string', 'EINVAL', ({ k }) => k.kwrite(0x8000_0000, 'x' as unknown as Uint8Array)],
  ['setIoHook of a string', 'EINVAL', ({ k }) => k.setIoHook('hook' as never)],
  ['procExited of a live process', 'EINVAL', ({ k, p }) => k.procExited(p)],
  ['procExited of nothing', 'EINVAL', ({ k }) => k.procExited(undefined as never)],
  ['checkRange at a NaN address', 'EINVAL', ({ p }) => p.checkRange('f', Number.NaN, 10, Prot.READ)],
  ['checkRange of a negative length', 'EINVAL', ({ p, rw }) => p.checkRange('f', rw, -1, Prot.READ)],
  [
    'copyinPhys with a sink that is not a function',
    'EINVAL',
    ({ p, rw }) => p.copyinPhys(rw, 8, 'x' as never),
  ],
];

const asyncCases: [string, KernelErrorCode, (w: World) => Promise<unknown>][] = [
  ['read of an unmapped page', 'EFAULT', ({ p, hole }) => p.read(hole, 1)],
  ['read running off the end of a mapping', 'EFAULT', ({ p, ro }) => p.read(ro + PAGE_SIZE, PAGE_SIZE + 1)],
  ['read of a PROT_NONE page', 'EFAULT', ({ p, none }) => p.read(none, 1)],
  ['read below user space', 'EFAULT', ({ p }) => p.read(0, 16)],
  ['read above user space', 'EFAULT', ({ p }) => p.read(VM_MAX_ADDRESS, 16)],
  ['read of a negative length', 'EINVAL', ({ p, rw }) => p.read(rw, -1)],
  ['read of a NaN length', 'EINVAL', ({ p, rw }) => p.read(rw, Number.NaN)],
  ['read of a fractional length', 'EINVAL', ({ p, rw }) => p.read(rw, 0.5)],
  ['read of a huge length', 'EINVAL', ({ p, rw }) => p.read(rw, 2 ** 40)],
  ['read at a negative address', 'EINVAL', ({ p }) => p.read(-1, 1)],
  ['read at an infinite address', 'EINVAL', ({ p }) => p.read(Number.POSITIVE_INFINITY, 1)],
  ['write to read-only memory', 'EFAULT', ({ p, ro }) => p.write(ro, Buffer.from('x'))],
  ['write to a read-only file mapping', 'EFAULT', ({ p, rofile }) => p.write(rofile, Buffer.from('x'))],
  ['write into a hole', 'EFAULT', ({ p, hole }) => p.write(hole, Buffer.from('x'))],
  [
    'write that runs from RW into RO',
    'EFAULT',
    ({ p, rw }) => p.write(rw + 4 * PAGE_SIZE - 1, Buffer.from('xy')),
  ],
  ['write of a string', 'EINVAL', ({ p, rw }) => p.write(rw, 'x' as unknown as Uint8Array)],
  ['write at a NaN address', 'EINVAL', ({ p }) => p.write(Number.NaN, Buffer.from('x'))],
  ['mmapFile of a missing file', 'ENOENT', ({ p }) => p.mmapFile(path.join(dir, 'nope'))],
  ['mmapFile of a directory', 'EINVAL', ({ p }) => p.mmapFile(sub)],
  ['mmapFile of an empty file', 'EINVAL', ({ p }) => p.mmapFile(empty)],
  ['mmapFile at an unaligned offset', 'EINVAL', ({ p }) => p.mmapFile(file, { offset: 1 })],
  ['mmapFile past the end', 'EINVAL', ({ p }) => p.mmapFile(file, { offset: 3 * PAGE_SIZE })],
  ['mmapFile of length 0', 'EINVAL', ({ p }) => p.mmapFile(file, { length: 0 })],
  ['mmapFile with bad protection', 'EINVAL', ({ p }) => p.mmapFile(file, { prot: -1 })],
  ['mmapFile with null options', 'EINVAL', ({ p }) => p.mmapFile(file, null as unknown as MmapFileOptions)],
  ['mmapFile of an empty path', 'EINVAL', ({ p }) => p.mmapFile('')],
  ['mmapFile of a path with a NUL byte', 'EINVAL', ({ p }) => p.mmapFile(`${file}\0x`)],
  [
    'mmapFile shared writable of a read-only file',
    'EACCES',
    ({ p }) => p.mmapFile(roFile, { shared: true, prot: RW, length: PAGE_SIZE }),
  ],
];

describe('bad inputs leave no pages', () => {
  it.each(syncCases)('%s: %s', async (_what, code, call) => {
    const w = await world();
    const before = snapshot(w);
    expectErrorSync(() => call(w), code);
    await w.k.idle();
    expect(snapshot(w)).toEqual(before);
    w.k.checkInvariants();
  });

  it.each(asyncCases)('%s: %s', async (_what, code, call) => {
    const w = await world();
    const before = snapshot(w);
    await expectError(call(w), code);
    await w.k.idle();
    expect(snapshot(w)).toEqual(before);
    w.k.checkInvariants();
  });

  it('an exited process refuses everything with ESRCH, and its pages are all back', async () => {
    const w = await world();
    const { k, p, rw } = w;
    p.exit();
    await k.idle();
    const free = k.stats().freePages;
    expect(free).toBe(32);
    expectErrorSync(() => p.mmap(PAGE_SIZE), 'ESRCH');
    expectErrorSync(() => p.munmap(rw, PAGE_SIZE), 'ESRCH');
    expectErrorSync(() => p.mprotect(rw, PAGE_SIZE, Prot.READ), 'ESRCH');
    expectErrorSync(() => p.fork(), 'ESRCH');
    expectErrorSync(() => p.exit(), 'ESRCH');
    await expectError(p.read(rw, 1), 'ESRCH');
    await expectError(p.write(rw, Buffer.from('x')), 'ESRCH');
    await expectError(p.mmapFile(file), 'ESRCH');
    await k.idle();
    expect(k.stats()).toMatchObject({ freePages: 32, anons: 0, processes: 0, swapUsed: 0 });
    expect(k.uvm.vnodes.size).toBe(0);
    k.checkInvariants();
  });

  it.each([
    ['physPages 0', { physPages: 0 }],
    ['physPages -4', { physPages: -4 }],
    ['physPages 2.5', { physPages: 2.5 }],
    ['physPages NaN', { physPages: Number.NaN }],
    ['physPages too many', { physPages: MAX_PHYS_PAGES * 2 }],
    ['swapPages -1', { swapPages: -1 }],
    ['swapPages 0.5', { swapPages: 0.5 }],
    ['options null', null],
  ])('new Kernel with %s: EINVAL', (_what, opts) => {
    expectErrorSync(() => new Kernel(opts as unknown as KernelOptions), 'EINVAL');
  });
});
