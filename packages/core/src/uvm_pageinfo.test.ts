import { describe, expect, it } from 'vitest';
import { useTmpDir, writeFileOf } from '../test/helpers.js';
import {
  FRAME_STATE_NAMES,
  FrameState,
  Kernel,
  PAGE_SIZE,
  Prot,
  uvmKmAllocPage,
  uvmKmFreePage,
  uvmLoan,
  uvmPglistAlloc,
  uvmPglistFree,
  uvmUnloanAnons,
  uvmUnloanPages,
} from './index.js';

const P = PAGE_SIZE;
const tmp = useTmpDir();

function count(states: Uint8Array, code: number): number {
  let n = 0;
  for (const s of states) if (s === code) n++;
  return n;
}

describe('Kernel.frameStates', () => {
  it('gives every frame one state, and the counts follow loans, orphans and their ends', async () => {
    const k = new Kernel({ physPages: 64 });
    const p = k.createProcess();
    const va = p.mmap(4 * P);
    await p.write(va, Buffer.alloc(3 * P, 1));
    let s = k.frameStates();
    expect(s.length).toBe(64);
    expect(count(s, FrameState.ANON)).toBe(3);
    expect(count(s, FrameState.FREE)).toBe(k.stats().freePages);
    const pages = await uvmLoan(p.map, va, 4 * P, 'kernel');
    s = k.frameStates(s);
    expect(count(s, FrameState.LOANED_TO_KERNEL)).toBe(3);
    expect(count(s, FrameState.ZERO)).toBe(1);
    p.munmap(va, 4 * P);
    s = k.frameStates(s);
    expect(count(s, FrameState.ORPHAN)).toBe(3);
    expect(count(s, FrameState.ORPHAN)).toBe(k.stats().orphanPages);
    uvmUnloanPages(pages);
    s = k.frameStates(s);
    expect(count(s, FrameState.FREE)).toBe(64);
    k.checkInvariants();
    p.exit();
  });

  it('shows object pages, O->A loans and kernel memory', async () => {
    const k = new Kernel({ physPages: 64 });
    const p = k.createProcess();
    const path = await writeFileOf(tmp.dir, 'f', 2 * P, 3);
    const fva = await p.mmapFile(path, { prot: Prot.READ });
    await p.read(fva, 2 * P);
    const anons = await uvmLoan(p.map, fva, P, 'anon');
    const kmem = await uvmKmAllocPage(k.uvm);
    const s = k.frameStates();
    expect([
      count(s, FrameState.OBJECT),
      count(s, FrameState.LOANED_TO_ANON),
      count(s, FrameState.KERNEL),
    ]).toEqual([1, 1, 1]);
    uvmKmFreePage(kmem);
    uvmUnloanAnons(anons);
    p.exit();
    await k.sync();
    k.checkInvariants();
  });

  it('refuses an output array too small (EINVAL)', () => {
    const k = new Kernel({ physPages: 16 });
    expect(() => k.frameStates(new Uint8Array(8))).toThrow(expect.objectContaining({ code: 'EINVAL' }));
  });
});

describe('Kernel.frameInfo', () => {
  it('describes a loaned frame: owner, counts, and its mappings by process (read-only while loaned)', async () => {
    const k = new Kernel({ physPages: 32 });
    const p = k.createProcess();
    const va = p.mmap(P);
    await p.write(va, Buffer.from('x'));
    const [pg] = await uvmLoan(p.map, va, P, 'kernel');
    const info = k.frameInfo(pg.frame);
    expect(info).toMatchObject({
      frame: pg.frame,
      state: FRAME_STATE_NAMES[FrameState.LOANED_TO_KERNEL],
      owner: 'anon',
      offset: null,
      loanCount: 1,
      wireCount: 1,
      anonOwns: true,
      busy: false,
      mappings: [{ pid: p.pid, va, writable: false }],
    });
    uvmUnloanPages([pg]);
    p.exit();
    expect(k.frameInfo(pg.frame)).toMatchObject({ state: 'free', owner: 'none', mappings: [] });
  });

  it('places a free frame in its free block, and an allocated one in none', () => {
    const k = new Kernel({ physPages: 32 });
    const run = uvmPglistAlloc(k.uvm, 3)!;
    expect(run[0].frame).toBe(0);
    expect(k.frameInfo(3).freeBlock).toEqual({ first: 3, pages: 1 });
    expect(k.frameInfo(6).freeBlock).toEqual({ first: 4, pages: 4 });
    expect(k.frameInfo(31).freeBlock).toEqual({ first: 16, pages: 16 });
    expect(k.frameInfo(1).freeBlock).toBeNull();
    uvmPglistFree(run);
    expect(k.frameInfo(1).freeBlock).toEqual({ first: 0, pages: 32 });
  });

  it('names a file page by its path and offset', async () => {
    const k = new Kernel({ physPages: 32 });
    const p = k.createProcess();
    const path = await writeFileOf(tmp.dir, 'g', 3 * P, 5);
    const fva = await p.mmapFile(path);
    await p.read(fva + 2 * P, 1);
    const info = k.frameInfo(p.map.pmap.extract((fva + 2 * P) / P));
    expect(info.state).toBe('object');
    expect(info.owner).toMatch(/^vnode .*g$/);
    expect(info.offset).toBe(2 * P);
    p.exit();
    await k.sync();
  });

  it('refuses a frame that does not exist (EINVAL)', () => {
    const k = new Kernel({ physPages: 16 });
    for (const f of [-1, 16, 1.5, Number.NaN]) {
      expect(() => k.frameInfo(f)).toThrow(expect.objectContaining({ code: 'EINVAL' }));
    }
  });
});
