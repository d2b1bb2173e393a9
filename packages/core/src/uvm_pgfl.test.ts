import { describe, expect, it } from 'vitest';
import { expectPanic } from '../test/helpers.js';
import { Kernel } from './index.js';
import { checkFreeLists } from './uvm_invariants.js';
import { PQ_FREE, PQ_NONE, type VmPage } from './uvm_page.js';
import { ceilLog2, floorLog2, type PageFreeLists } from './uvm_pgfl.js';

/* the free lists of a fresh kernel of n pages */
function lists(n: number): { fl: PageFreeLists; audit: () => number; pages: readonly VmPage[] } {
  const k = new Kernel({ physPages: n, swapPages: 0 });
  return { fl: k.uvm.free, audit: () => checkFreeLists(k.uvm), pages: k.uvm.pages };
}

/* blocks: every free block as "first+pages", sorted by frame */
function blocks(fl: PageFreeLists): string[] {
  const out: [number, number][] = [];
  for (let k = 0; k <= fl.maxOrder; k++) {
    for (let pg = fl.heads[k]; pg !== null; pg = pg.next) out.push([pg.frame, 1 << k]);
  }
  return out.sort((a, b) => a[0] - b[0]).map(([f, n]) => `${f}+${n}`);
}

/* takeAll: allocPage until nothing is free; returns the pages taken, in order */
function takeAll(fl: PageFreeLists): VmPage[] {
  const out: VmPage[] = [];
  for (let pg = fl.allocPage(); pg !== null; pg = fl.allocPage()) out.push(pg);
  return out;
}

describe('PageFreeLists at boot', () => {
  it.each([
    [16, ['0+16']],
    [4096, ['0+4096']],
    [200, ['0+128', '128+64', '192+8']],
    [7, ['0+4', '4+2', '6+1']],
    [1, ['0+1']],
  ])('cuts %i pages into the fewest aligned blocks', (n, want) => {
    const { fl, audit } = lists(n);
    expect(blocks(fl)).toEqual(want);
    expect(fl.length).toBe(n);
    expect(audit()).toBe(n);
  });
});

describe('PageFreeLists.allocPage / freePage', () => {
  it('takes the head of the smallest block, splitting a bigger one in halves down to a page', () => {
    const { fl, audit } = lists(16);
    const pg = fl.allocPage()!;
    expect(pg.frame).toBe(0);
    expect(pg.queue).toBe(PQ_NONE);
    expect(blocks(fl)).toEqual(['1+1', '2+2', '4+4', '8+8']);
    expect(fl.allocPage()!.frame).toBe(1);
    expect(blocks(fl)).toEqual(['2+2', '4+4', '8+8']);
    expect(fl.length).toBe(14);
    audit();
  });

  it('merges a freed page with its free buddy, again and again, back into one block', () => {
    const { fl, audit } = lists(16);
    const pg = fl.allocPage()!;
    fl.freePage(pg);
    expect(pg.queue).toBe(PQ_FREE);
    expect(blocks(fl)).toEqual(['0+16']);
    audit();
  });

  it('coalesces fully whatever order the pages come back in', () => {
    const { fl, audit } = lists(64);
    const taken = takeAll(fl);
    expect(taken.map((p) => p.frame)).toEqual([...Array(64).keys()]);
    expect(fl.length).toBe(0);
    /* a fixed shuffle: stride 37 visits every page of 64 once */
    for (let i = 0; i < 64; i++) {
      fl.freePage(taken[(i * 37) % 64]);
      audit();
    }
    expect(blocks(fl)).toEqual(['0+64']);
  });

  it('gives a page freed next to an allocated buddy out again first (a warm page)', () => {
    const { fl } = lists(16);
    const [, , c] = [fl.allocPage()!, fl.allocPage()!, fl.allocPage()!, fl.allocPage()!];
    fl.freePage(c);
    expect(fl.allocPage()).toBe(c);
  });

  it('returns null with nothing free, and head says so', () => {
    const { fl } = lists(2);
    takeAll(fl);
    expect(fl.allocPage()).toBeNull();
    expect(fl.head).toBeNull();
  });
});

describe('PageFreeLists.allocRun', () => {
  it('carves a run out of the smallest aligned block big enough, and frees the tail at once', () => {
    const { fl, audit } = lists(16);
    expect(fl.allocRun(3)).toBe(0);
    expect(blocks(fl)).toEqual(['3+1', '4+4', '8+8']);
    expect(fl.length).toBe(13);
    audit();
    expect(fl.allocRun(8)).toBe(8);
    expect(blocks(fl)).toEqual(['3+1', '4+4']);
    audit();
  });

  it('finds a run across neighbouring blocks when no aligned block is big enough', () => {
    const { fl, audit, pages } = lists(16);
    const taken = takeAll(fl);
    for (const pg of taken) if (pg.frame !== 0 && pg.frame !== 8) fl.freePage(pg);
    expect(blocks(fl)).toEqual(['1+1', '2+2', '4+4', '9+1', '10+2', '12+4']);
    expect(fl.allocRun(7)).toBe(9);
    expect(blocks(fl)).toEqual(['1+1', '2+2', '4+4']);
    expect(fl.allocRun(7)).toBe(1);
    expect(fl.length).toBe(0);
    for (let f = 1; f < 16; f++) if (f !== 8) expect(pages[f].queue).toBe(PQ_NONE);
    audit();
  });

  it('takes all of a RAM that is not a power of two in one run', () => {
    const { fl, audit } = lists(200);
    expect(fl.allocRun(200)).toBe(0);
    expect(fl.length).toBe(0);
    audit();
  });

  it('returns -1 and changes nothing when no run of n free frames exists', () => {
    const { fl, audit } = lists(32);
    const taken = takeAll(fl);
    /* free every page but each fourth: the longest free runs are 3 pages */
    for (const pg of taken) if (pg.frame % 4 !== 0) fl.freePage(pg);
    const before = blocks(fl);
    expect(fl.allocRun(4)).toBe(-1);
    expect(fl.allocRun(32)).toBe(-1);
    expect(blocks(fl)).toEqual(before);
    expect(fl.length).toBe(24);
    /* and a run of 3 is one of the gaps */
    expect(fl.allocRun(3) % 4).toBe(1);
    audit();
  });
});

describe('PageFreeLists.blockOf', () => {
  it('names the free block holding a frame, and null for an allocated frame', () => {
    const { fl } = lists(16);
    fl.allocRun(3);
    expect(fl.blockOf(3)).toEqual([3, 0]);
    expect(fl.blockOf(6)).toEqual([4, 2]);
    expect(fl.blockOf(15)).toEqual([8, 3]);
    expect(fl.blockOf(1)).toBeNull();
  });
});

describe('checkFreeLists', () => {
  it('finds two free buddies left unmerged', () => {
    const { fl, audit, pages } = lists(4);
    const [a, b] = [fl.allocPage()!, fl.allocPage()!];
    fl.freePage(a);
    /* b back by hand, without the merge */
    b.queue = PQ_FREE;
    fl.heads[0]!.prev = b;
    b.next = fl.heads[0];
    fl.heads[0] = b;
    fl.order[b.frame] = 0;
    fl.blocks[0]++;
    fl.length++;
    expectPanic(audit, /free buddies 1, 0 unmerged/);
    expect(pages.length).toBe(4);
  });

  it('finds a free page in no block, and a misaligned block', () => {
    const one = lists(4);
    const pg = one.fl.allocPage()!;
    pg.queue = PQ_FREE;
    expectPanic(one.audit, /free page 0 in no free block/);
    const two = lists(4);
    two.fl.order[0] = -1;
    two.fl.order[1] = 2;
    two.fl.heads[2] = two.pages[1];
    expectPanic(two.audit, /misaligned/);
  });
});

describe('floorLog2 / ceilLog2', () => {
  it('round down and up', () => {
    expect([1, 2, 3, 4, 5, 262144].map(floorLog2)).toEqual([0, 1, 1, 2, 2, 18]);
    expect([1, 2, 3, 4, 5, 262144].map(ceilLog2)).toEqual([0, 1, 2, 2, 3, 18]);
  });
});
