/*
 * uvm_pgfl.ts: the free page lists (NetBSD's `struct pgfreelist`, "pgfl" in uvm_page.c), kept as a
 * binary buddy system (Linux's mm/page_alloc.c: __rmqueue_smallest, __free_one_page).
 *
 * Free memory is a set of *blocks*: 2^k free frames starting at a frame that is a multiple of 2^k
 * (order k). Each block is listed once, on the list of its order, by its first page (its head); the
 * other pages of the block are on no list, but every free page says `queue === PQ_FREE`. A block's
 * *buddy* is the other half of the block of order k + 1 that contains it: the block at
 * `frame ^ 2^k`. Two free buddies are never both listed -- they are always merged into one block of
 * the next order (coalesced) -- so a free run of frames is always made of the fewest aligned blocks.
 *
 *   allocPage     one page (what every fault, loan break and pager get takes): the head of the
 *                 smallest free block; if that block is bigger than a page, it is split in halves,
 *                 and every upper half goes onto the list of its order (at most log2(RAM) of them)
 *   freePage      one page back: while its buddy is a free block of the same order, take the buddy
 *                 off its list and merge; list what is left (at most log2(RAM) merges)
 *   allocRun      n contiguous pages: the smallest free block of at least 2^ceil(log2 n) pages, split
 *                 down to that order; the pages past n go straight back as blocks. Should no block be
 *                 that big, a bounded search looks for n free frames spanning neighbouring blocks
 *                 (a run need not be aligned), from the biggest blocks down.
 *
 * Which order lists are not empty is one bit each in a mask, so finding the smallest block that is
 * big enough is a bit trick, not a scan; with at most 2^18 frames there are at most 19 orders. Every
 * operation thus costs O(log RAM), never O(RAM) -- NetBSD's uvm_pglistalloc_contig, by contrast,
 * walks the frames of each physical segment from a hint until it finds a run.
 *
 * The lists are intrusive and LIFO, threaded through the free pages' own prev/next links (a free page
 * is on no paging queue), so a page freed is the first reused while it is still warm, and nothing on
 * these paths allocates. `order[f]` is the order of the free block whose head is frame f, or -1.
 */
import { kassert } from './errors.js';
import { PQ_FREE, PQ_NONE, type VmPage } from './uvm_page.js';

/* how many free blocks allocRun looks at, at most, when it must look for a run across blocks */
const SPAN_SEARCH_BLOCKS = 64;

/** PageFreeLists: the free pages as a binary buddy system (see above). */
export class PageFreeLists {
  /** free pages, in all (uvmexp.free) */
  length = 0;
  /** the largest order a block can have: 2^maxOrder <= the number of frames */
  readonly maxOrder: number;
  /** order of the free block headed by each frame, or -1 (not the head of a free block) */
  readonly order: Int8Array;
  /** the first free block of each order (the rest follow through pg.next) */
  readonly heads: (VmPage | null)[];
  /** free blocks of each order */
  readonly blocks: Int32Array;
  /** bit k set: the list of order k is not empty */
  nonEmpty = 0;
  private readonly pages: readonly VmPage[];

  /**
   * A set of free lists holding every page of `pages` (all free: queue PQ_FREE, no owner), cut into
   * the fewest aligned blocks, in frame order.
   */
  constructor(pages: readonly VmPage[]) {
    this.pages = pages;
    this.maxOrder = floorLog2(pages.length);
    this.order = new Int8Array(pages.length).fill(-1);
    this.heads = new Array<VmPage | null>(this.maxOrder + 1).fill(null);
    this.blocks = new Int32Array(this.maxOrder + 1);
    this.freeRange(0, pages.length);
  }

  /** head: some free page (the head of the smallest free block), or null when none is free */
  get head(): VmPage | null {
    const m = this.nonEmpty;
    return m === 0 ? null : this.heads[lowestBit(m)];
  }

  /**
   * allocPage: take one free page off the lists (__rmqueue_smallest of order 0).
   * => returns it, queue PQ_NONE and unlinked, or null when no page is free
   */
  allocPage(): VmPage | null {
    const m = this.nonEmpty;
    if (m === 0) return null;
    const k = lowestBit(m);
    const pg = this.heads[k]!;
    this.unlink(pg, k);
    for (let j = k - 1; j >= 0; j--) this.link(this.pages[pg.frame + (1 << j)], j);
    this.length--;
    pg.queue = PQ_NONE;
    return pg;
  }

  /**
   * freePage: put one page back, merging it with its buddy as long as the buddy is free
   * (__free_one_page).
   * => pg must be off every queue and own nothing (the caller's job: uvmPageFree)
   */
  freePage(pg: VmPage): void {
    pg.queue = PQ_FREE;
    this.length++;
    this.insertBlock(pg.frame, 0);
  }

  /**
   * allocRun: take n contiguous free pages off the lists.
   * => n a positive integer (the caller checks it)
   * => returns the first frame of the run, its pages queue PQ_NONE and unlinked; or -1 when no run
   *    of n free frames was found (none aligned to 2^ceil(log2 n), and none across blocks within the
   *    bounded search)
   */
  allocRun(n: number): number {
    const k = ceilLog2(n);
    if (k <= this.maxOrder) {
      const m = (this.nonEmpty >>> k) << k;
      if (m !== 0) return this.takeAligned(lowestBit(m), k, n);
    }
    return this.takeSpanning(n);
  }

  /**
   * sureRun: will allocRun(n) find n contiguous pages now -- and still after any number of pages are
   * freed? True when a free aligned block of at least 2^ceil(log2 n) pages is listed: freeing only
   * merges blocks, it never splits one. (A run found only across blocks, by the bounded search, is
   * not sure.)
   */
  sureRun(n: number): boolean {
    const k = ceilLog2(n);
    return k <= this.maxOrder && this.nonEmpty >>> k !== 0;
  }

  /**
   * blockOf: the free block holding a frame, for audits and page maps
   * => returns [head frame, order], or null when the frame is not free
   */
  blockOf(frame: number): [number, number] | null {
    for (let k = 0; k <= this.maxOrder; k++) {
      const head = frame - (frame % (1 << k));
      if (this.order[head] === k) return [head, k];
    }
    return null;
  }

  /* takeAligned: split the first block of order j down to order k; keep n pages of it, free the rest */
  private takeAligned(j: number, k: number, n: number): number {
    const head = this.heads[j]!;
    const first = head.frame;
    this.unlink(head, j);
    for (let i = j - 1; i >= k; i--) this.link(this.pages[first + (1 << i)], i);
    this.claim(first, first + n);
    this.length -= 1 << k;
    this.freeRange(first + n, first + (1 << k));
    return first;
  }

  /*
   * takeSpanning: look for n free frames across neighbouring blocks. Any run of n >= 2^j free frames
   * holds an aligned 2^(j-1) of them, so it holds a listed block of order >= j - 1: the search starts
   * from such blocks, biggest first, and grows each into the free run around it.
   */
  private takeSpanning(n: number): number {
    let budget = SPAN_SEARCH_BLOCKS;
    for (let k = this.maxOrder; k >= Math.max(0, floorLog2(n) - 1); k--) {
      for (let pg = this.heads[k]; pg !== null && budget > 0; pg = pg.next, budget--) {
        const start = this.runStart(pg.frame);
        if (this.runReaches(start, n)) return this.takeFrom(start, n);
      }
    }
    return -1;
  }

  /* runStart: the first frame of the free run that the free block at `head` is part of */
  private runStart(head: number): number {
    let start = head;
    for (;;) {
      const prev = this.blockEndingAt(start);
      if (prev < 0) return start;
      start = prev;
    }
  }

  /* blockEndingAt: the head of the free block whose last frame is frame - 1, or -1 */
  private blockEndingAt(frame: number): number {
    for (let k = 0; k <= this.maxOrder && frame >= 1 << k; k++) {
      if (this.order[frame - (1 << k)] === k) return frame - (1 << k);
    }
    return -1;
  }

  /* runReaches: do the free blocks from `start` on cover n frames? */
  private runReaches(start: number, n: number): boolean {
    let f = start;
    while (f - start < n && f < this.pages.length && this.order[f] >= 0) f += 1 << this.order[f];
    return f - start >= n;
  }

  /* takeFrom: take the blocks covering [start, start + n), keep those n frames, free the rest */
  private takeFrom(start: number, n: number): number {
    let f = start;
    while (f < start + n) {
      const k = this.order[f];
      kassert(k >= 0, `uvm_pglistalloc: frame ${f} isn't the head of a free block`);
      this.unlink(this.pages[f], k);
      f += 1 << k;
    }
    this.claim(start, start + n);
    this.length -= f - start;
    this.freeRange(start + n, f);
    return start;
  }

  /* claim: the pages of [from, to) leave the free lists (they are already unlinked) */
  private claim(from: number, to: number): void {
    for (let f = from; f < to; f++) this.pages[f].queue = PQ_NONE;
  }

  /*
   * freeRange: put the frames of [from, to) back as the fewest aligned blocks, each merged with its
   * buddy where it can be
   */
  private freeRange(from: number, to: number): void {
    let f = from;
    while (f < to) {
      let k = 0;
      while (k < this.maxOrder && f % (2 << k) === 0 && f + (2 << k) <= to) k++;
      for (let i = f; i < f + (1 << k); i++) this.pages[i].queue = PQ_FREE;
      this.length += 1 << k;
      this.insertBlock(f, k);
      f += 1 << k;
    }
  }

  /* insertBlock: list the free block [f, f + 2^k), merging it with its buddy while the buddy is free */
  private insertBlock(f: number, k: number): void {
    while (k < this.maxOrder) {
      const buddy = f ^ (1 << k);
      if (buddy >= this.pages.length || this.order[buddy] !== k) break;
      this.unlink(this.pages[buddy], k);
      if (buddy < f) f = buddy;
      k++;
    }
    this.link(this.pages[f], k);
  }

  private link(pg: VmPage, k: number): void {
    const next = this.heads[k];
    pg.prev = null;
    pg.next = next;
    if (next !== null) next.prev = pg;
    this.heads[k] = pg;
    this.order[pg.frame] = k;
    this.blocks[k]++;
    this.nonEmpty |= 1 << k;
  }

  private unlink(pg: VmPage, k: number): void {
    if (pg.prev !== null) pg.prev.next = pg.next;
    else this.heads[k] = pg.next;
    if (pg.next !== null) pg.next.prev = pg.prev;
    pg.prev = pg.next = null;
    this.order[pg.frame] = -1;
    if (--this.blocks[k] === 0) this.nonEmpty &= ~(1 << k);
  }
}

/** floorLog2: the largest k with 2^k <= n, for an integer n in 1..2^31 - 1 */
export function floorLog2(n: number): number {
  return 31 - Math.clz32(n);
}

/** ceilLog2: the smallest k with 2^k >= n, for an integer n in 1..2^31 - 1 */
export function ceilLog2(n: number): number {
  return n <= 1 ? 0 : 32 - Math.clz32(n - 1);
}

/* lowestBit: the index of the lowest bit set in a non-zero mask */
function lowestBit(m: number): number {
  return 31 - Math.clz32(m & -m);
}
