/*
 * uvm_invariants.ts: checkInvariants(), the kernel's self-audit (NetBSD's DIAGNOSTIC checks, all at
 * once). Tests call it after every operation. It verifies:
 *
 *   pages    every frame is in exactly one state (free / active / inactive / wired / busy / orphan),
 *            the queues link up and their lengths match, wired and loan counts agree with each other
 *            (a page's wires are exactly its kernel loans), owners point back at their pages
 *   free     every free page is in exactly one free block, of its order, aligned to its size; no
 *            two free buddies are left unmerged; the lists link up and their counts match
 *   loans    no page on loan has a writable user mapping; orphans are exactly the ownerless pages
 *            on loan; the shared zero page is never writable
 *   pmaps    pv lists and page tables agree both ways; every user mapping maps the page its entry's
 *            amap or object holds at that address, with no more than the entry's protection
 *   maps     entries sorted, page-aligned, non-overlapping; amap ref and per-slot ref counts match
 *            the entries that use them; anons have at least as many references as slots hold them
 * Any failure throws KernelPanic describing the first broken rule.
 */
import { kassert, panic } from './errors.js';
import { atop, PAGE_SIZE, Prot } from './param.js';
import type { Uvm } from './uvm.js';
import type { Amap } from './uvm_amap.js';
import type { Anon } from './uvm_anon.js';
import type { VmMap } from './uvm_map.js';
import {
  type PageQueue,
  PG_BUSY,
  PQ_ACTIVE,
  PQ_FREE,
  PQ_INACTIVE,
  PQ_NONE,
  type VmPage,
} from './uvm_page.js';

/**
 * checkInvariants: audit every page, queue, mapping, map and amap of a kernel (kernel.checkInvariants())
 * => throws KernelPanic naming the first broken invariant
 */
export function checkInvariants(uvm: Uvm, maps: Iterable<VmMap>): void {
  checkQueues(uvm);
  for (const pg of uvm.pages) checkPage(uvm, pg);
  const live = [...maps];
  let userMappings = 0;
  for (const map of live) userMappings += checkMap(map);
  checkPvLists(uvm, userMappings);
  checkAmaps(live);
}

function checkQueues(uvm: Uvm): void {
  const count = (q: PageQueue, id: number): number => {
    let n = 0;
    let prev: VmPage | null = null;
    for (let pg = q.head; pg !== null; prev = pg, pg = pg.next) {
      kassert(pg.queue === id, `invariant: page ${pg.frame} on queue ${id} says queue ${pg.queue}`);
      kassert(pg.prev === prev, `invariant: queue ${id} broken back link at page ${pg.frame}`);
      n++;
    }
    kassert(q.tail === prev, `invariant: queue ${id} tail is wrong`);
    kassert(n === q.length, `invariant: queue ${id} has ${n} pages, length says ${q.length}`);
    return n;
  };
  const free = checkFreeLists(uvm);
  const active = count(uvm.active, PQ_ACTIVE);
  const inactive = count(uvm.inactive, PQ_INACTIVE);
  let none = 0;
  let wired = 0;
  for (const pg of uvm.pages) {
    if (pg.queue === PQ_NONE) none++;
    if (pg.wireCount > 0) wired++;
  }
  kassert(free + active + inactive + none === uvm.pages.length, 'invariant: page conservation');
  kassert(wired === uvm.wiredPages, `invariant: ${wired} wired pages, counter says ${uvm.wiredPages}`);
}

/**
 * checkFreeLists: audit the buddy free lists (uvm_pgfl.ts) -- every listed block aligned, within RAM,
 * made of free pages no other block holds, its buddy not a free block of its order (they would have
 * merged); every free page in a block; only block heads have an order; list links, block counts, the
 * non-empty mask and the page count agree
 * => returns the number of free pages; a KernelPanic at the first broken rule
 */
export function checkFreeLists(uvm: Uvm): number {
  const fl = uvm.free;
  const held = new Uint8Array(uvm.pages.length);
  let pages = 0;
  for (let k = 0; k <= fl.maxOrder; k++) pages += checkFreeList(uvm, k, held);
  let heads = 0;
  for (let f = 0; f < uvm.pages.length; f++) {
    kassert(
      (uvm.pages[f].queue === PQ_FREE) === (held[f] === 1),
      `invariant: free page ${f} in no free block`,
    );
    if (fl.order[f] >= 0) heads++;
  }
  kassert(heads === sumBlocks(fl.blocks), 'invariant: a frame has an order but heads no listed free block');
  kassert(pages === fl.length, `invariant: ${pages} pages in free blocks, length says ${fl.length}`);
  return pages;
}

/* checkFreeList: the blocks of one order, marking their pages in `held`; returns how many pages they hold */
function checkFreeList(uvm: Uvm, k: number, held: Uint8Array): number {
  const fl = uvm.free;
  const n = uvm.pages.length;
  let blocks = 0;
  let prev: VmPage | null = null;
  for (let pg = fl.heads[k]; pg !== null; prev = pg, pg = pg.next) {
    const f = pg.frame;
    kassert(pg.prev === prev, `invariant: free list ${k} broken back link at page ${f}`);
    kassert(fl.order[f] === k, `invariant: free block at ${f} on list ${k} says order ${fl.order[f]}`);
    kassert(
      f % (1 << k) === 0 && f + (1 << k) <= n,
      `invariant: free block at ${f} of order ${k} misaligned`,
    );
    for (let i = f; i < f + (1 << k); i++) {
      kassert(held[i] === 0, `invariant: free page ${i} in two free blocks`);
      kassert(uvm.pages[i].queue === PQ_FREE, `invariant: page ${i} in a free block isn't free`);
      held[i] = 1;
    }
    const buddy = f ^ (1 << k);
    kassert(
      k === fl.maxOrder || buddy >= n || fl.order[buddy] !== k,
      `invariant: free buddies ${f}, ${buddy} unmerged`,
    );
    blocks++;
  }
  kassert(
    blocks === fl.blocks[k],
    `invariant: free list ${k} has ${blocks} blocks, count says ${fl.blocks[k]}`,
  );
  kassert(blocks > 0 === ((fl.nonEmpty & (1 << k)) !== 0), `invariant: free list ${k} mask bit is wrong`);
  return blocks << k;
}

function sumBlocks(blocks: Int32Array): number {
  let n = 0;
  for (const b of blocks) n += b;
  return n;
}

function checkPage(uvm: Uvm, pg: VmPage): void {
  const f = pg.frame;
  if (pg.queue === PQ_FREE) {
    kassert(
      pg.uobject === null && pg.uanon === null && pg.loanCount === 0 && pg.wireCount === 0 && pg.flags === 0,
      `invariant: free page ${f} still has state`,
    );
    kassert(uvm.mmu.pv[f] === null, `invariant: free page ${f} is mapped`);
    return;
  }
  if (pg.wireCount === 0 && pg.queue === PQ_NONE) {
    kassert((pg.flags & PG_BUSY) !== 0, `invariant: page ${f} is lost (no queue)`);
  }
  if (pg.uobject === uvm.kernelObject || pg.isOrphan()) {
    kassert(
      pg.queue === PQ_NONE || pg.uanon !== null,
      `invariant: kernel or orphan page ${f} on a paging queue`,
    );
  }
  const oaLoan = pg.uanon !== null && !pg.anonOwns ? 1 : 0;
  kassert(pg.loanCount >= oaLoan, `invariant: page ${f} lent to an anon has loanCount ${pg.loanCount}`);
  const kmem = pg.uobject === uvm.kernelObject ? 1 : 0;
  kassert(
    pg.wireCount === pg.loanCount - oaLoan + kmem,
    `invariant: page ${f} wires ${pg.wireCount} != kernel loans + kernel memory`,
  );
  if (pg.uobject !== null) {
    kassert(pg.uobject.pages[pg.offset] === pg, `invariant: page ${f} not in its object`);
    kassert(!pg.anonOwns, `invariant: page ${f} owned by an object and an anon`);
  }
  if (pg.uanon !== null) kassert(pg.uanon.page === pg, `invariant: page ${f}'s anon points elsewhere`);
  if (pg.anonOwns) kassert(pg.uanon !== null, `invariant: page ${f} anon-owned without an anon`);
  if (pg.uobject === null && pg.uanon === null) {
    kassert(pg.loanCount > 0, `invariant: page ${f} has no owner and no loan (leaked)`);
  }
  if (pg.loanCount > 0 || pg.uobject === uvm.zeroObject) {
    kassert((uvm.mmu.maxProt(f) & Prot.WRITE) === 0, `invariant: page ${f} is on loan but mapped writable`);
  }
}

/* checkMap: entries and mappings of one map; returns its count of valid mappings */
function checkMap(map: VmMap): number {
  let prevEnd = 0;
  for (const e of map.entries) {
    kassert(e.start % PAGE_SIZE === 0 && e.end % PAGE_SIZE === 0, 'invariant: unaligned map entry');
    kassert(e.start >= prevEnd && e.end > e.start, 'invariant: map entries overlap or are unsorted');
    prevEnd = e.end;
  }
  let n = 0;
  map.pmap.forEachValid((vpn, frame, bits) => {
    n++;
    const va = vpn * PAGE_SIZE;
    const e = map.lookup(va);
    if (e === null) panic(`invariant: va ${va.toString(16)} mapped outside any entry`);
    kassert((bits & Prot.ALL & ~e.prot) === 0, `invariant: mapping at ${va.toString(16)} exceeds entry prot`);
    const idx = atop(va - e.start);
    const anon = e.amap !== null ? e.amap.slots[e.amapSlot + idx] : null;
    const want = anon !== null ? anon.page : (e.object?.pages[e.objOffset + idx] ?? null);
    kassert(
      want !== null && want.frame === frame,
      `invariant: va ${va.toString(16)} maps a stale frame ${frame}`,
    );
    if (bits & Prot.WRITE) {
      kassert(!e.needsCopy, `invariant: needs-copy entry writable at ${va.toString(16)}`);
      kassert(
        anon !== null ? anon.ref === 1 : !e.copyOnWrite,
        `invariant: shared page writable at ${va.toString(16)}`,
      );
    }
  });
  kassert(n === map.pmap.resident, `invariant: pmap resident count ${map.pmap.resident} != ${n}`);
  return n;
}

function checkPvLists(uvm: Uvm, userMappings: number): void {
  let n = 0;
  for (let f = 0; f < uvm.pages.length; f++) {
    for (let pv = uvm.mmu.pv[f]; pv !== null; pv = pv.next) {
      kassert(pv.pmap.frames[pv.vpn] === f + 1, `invariant: pv entry of frame ${f} doesn't match its pmap`);
      n++;
    }
  }
  kassert(n === userMappings, `invariant: ${n} pv entries for ${userMappings} mappings`);
}

function checkAmaps(maps: VmMap[]): void {
  const refs = new Map<Amap, { ref: number; ppref: Int32Array }>();
  const anonSlots = new Map<Anon, number>();
  for (const map of maps) {
    for (const e of map.entries) {
      if (e.amap === null) continue;
      let r = refs.get(e.amap);
      if (r === undefined) {
        r = { ref: 0, ppref: new Int32Array(e.amap.slots.length) };
        refs.set(e.amap, r);
      }
      r.ref++;
      for (let i = 0; i < e.npages; i++) r.ppref[e.amapSlot + i]++;
    }
  }
  for (const [amap, r] of refs) {
    kassert(amap.ref === r.ref, `invariant: amap ref ${amap.ref} != ${r.ref} entries`);
    let used = 0;
    for (let i = 0; i < amap.slots.length; i++) {
      kassert(
        amap.ppref[i] === r.ppref[i],
        `invariant: amap slot ${i} ppref ${amap.ppref[i]} != ${r.ppref[i]}`,
      );
      const anon = amap.slots[i];
      if (anon === null) continue;
      used++;
      anonSlots.set(anon, (anonSlots.get(anon) ?? 0) + 1);
    }
    kassert(used === amap.nused, 'invariant: amap nused is wrong');
  }
  for (const [anon, slots] of anonSlots) {
    kassert(anon.ref >= slots, `invariant: anon with ${anon.ref} refs is in ${slots} slots`);
    kassert(anon.page !== null || anon.swslot !== 0, 'invariant: anon has neither page nor swap slot');
  }
}
