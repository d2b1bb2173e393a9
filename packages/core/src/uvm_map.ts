/*
 * uvm_map.ts: address maps (vm_map) and their entries.
 *
 * A map is a sorted array of entries, each a page-aligned range [start, end) with a protection, a
 * maximum protection, an inheritance for fork, and its two layers: an amap (anonymous pages, the upper
 * layer) and an object (the lower layer). A private mapping is copy-on-write: writes go to anons in the
 * amap. `needsCopy` says the entry shares its amap with another (after fork) and must copy it before
 * writing (amap_copy): fork itself copies nothing.
 *
 * `version` increments on every change to the map. Code that sleeps (pager I/O, waiting for memory)
 * notes the version first and revalidates after: if it changed, its lookup is stale and it looks up
 * again -- NetBSD's uvmfault_relock() on the map's timestamp.
 */
import { KernelError } from './errors.js';
import {
  atop,
  hex,
  Inherit,
  type Inheritance,
  PAGE_SIZE,
  Prot,
  VM_MAX_ADDRESS,
  VM_MIN_ADDRESS,
} from './param.js';
import type { Pmap } from './pmap.js';
import type { Uvm } from './uvm.js';
import { type Amap, amapAlloc, amapCopy, amapRef, amapUnref } from './uvm_amap.js';
import type { UvmObject } from './uvm_object.js';

/**
 * MapEntry: one mapping of a map (NetBSD's vm_map_entry): a range, its protection, and what backs it -- an
 * amap over an object, either of them, or neither (zero-fill).
 */
export class MapEntry {
  /** first address */
  start: number;
  /** end address (exclusive) */
  end: number;
  /** current protection (Prot bits) */
  prot: number;
  /** the most mprotect may grant */
  maxProt: number;
  /** what fork does with it */
  inheritance: Inheritance;
  /** private: writes go to anons, never to the object */
  copyOnWrite: boolean;
  /** the amap is shared copy-on-write and must be copied before the first write (after fork) */
  needsCopy: boolean;
  /** the anons of the range, or null */
  amap: Amap | null = null;
  /** first amap slot of this entry */
  amapSlot = 0;
  /** the object mapped, or null (anonymous memory) */
  object: UvmObject | null;
  /** page index in object of `start` */
  objOffset: number;

  /** an entry as described (amap none) */
  constructor(init: {
    start: number;
    end: number;
    prot: number;
    maxProt: number;
    inheritance: Inheritance;
    copyOnWrite: boolean;
    needsCopy: boolean;
    object: UvmObject | null;
    objOffset: number;
  }) {
    this.start = init.start;
    this.end = init.end;
    this.prot = init.prot;
    this.maxProt = init.maxProt;
    this.inheritance = init.inheritance;
    this.copyOnWrite = init.copyOnWrite;
    this.needsCopy = init.needsCopy;
    this.object = init.object;
    this.objOffset = init.objOffset;
  }

  /** npages: the range's length in pages */
  get npages(): number {
    return (this.end - this.start) / PAGE_SIZE;
  }

  /** clone: a copy sharing the amap and object (for clipping) */
  clone(): MapEntry {
    const e = new MapEntry(this);
    e.amap = this.amap;
    e.amapSlot = this.amapSlot;
    return e;
  }
}

/**
 * VmMap: a process's address space (NetBSD's vm_map): entries over a pmap. Users pass it (proc.map) to
 * uvmLoan, uvmFault, uvmPageTransfer; only the kernel changes it.
 *
 * @hideconstructor
 */
export class VmMap {
  /** the VM system the map belongs to */
  readonly uvm: Uvm;
  /** @internal */
  readonly pmap: Pmap;
  /** @internal */
  readonly entries: MapEntry[] = [];
  /** @internal */
  version = 0;
  /** @internal */
  dead = false;

  /** @internal a process's map is made with it */
  constructor(uvm: Uvm, pmap: Pmap) {
    this.uvm = uvm;
    this.pmap = pmap;
  }

  /** @internal lookup: the entry containing va, or null (uvm_map_lookup_entry) */
  lookup(va: number): MapEntry | null {
    const i = this.indexOf(va);
    return i >= 0 ? this.entries[i] : null;
  }

  /** @internal indexOf: index of the entry containing va, or -(insertion point) - 1 */
  indexOf(va: number): number {
    let lo = 0;
    let hi = this.entries.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const e = this.entries[mid];
      if (va < e.start) hi = mid - 1;
      else if (va >= e.end) lo = mid + 1;
      else return mid;
    }
    return -lo - 1;
  }

  /** size: bytes mapped */
  get size(): number {
    let n = 0;
    for (const e of this.entries) n += e.end - e.start;
    return n;
  }
}

/**
 * uvmMapFindSpace: the lowest free range of len bytes in the user part of the map.
 * => throws ENOMEM when the address space is full
 */
export function uvmMapFindSpace(map: VmMap, len: number): number {
  let va = VM_MIN_ADDRESS;
  for (const e of map.entries) {
    if (e.start - va >= len) return va;
    va = Math.max(va, e.end);
  }
  if (VM_MAX_ADDRESS - va >= len) return va;
  throw new KernelError('ENOMEM', `uvm_map: no ${hex(len)} bytes of free address space`);
}

/** uvmMapInsert: put a new entry into the map (ranges must not overlap). */
export function uvmMapInsert(map: VmMap, entry: MapEntry): void {
  const i = map.indexOf(entry.start);
  map.entries.splice(-i - 1, 0, entry);
  map.version++;
}

/**
 * uvmMapClip: split the entry at index i so that one ends at va (uvm_map_clip_start/end).
 * => both halves keep their share of the amap (same slots) and a reference to the object
 */
export function uvmMapClip(map: VmMap, i: number, va: number): void {
  const e = map.entries[i];
  if (va <= e.start || va >= e.end) return;
  const tail = e.clone();
  const delta = atop(va - e.start);
  tail.start = va;
  tail.amapSlot = e.amapSlot + delta;
  tail.objOffset = e.objOffset + delta;
  e.end = va;
  if (e.amap !== null) e.amap.ref++;
  if (e.object !== null) e.object.reference();
  map.entries.splice(i + 1, 0, tail);
  map.version++;
}

/*
 * clipRange: clip entries so that [start, end) starts and ends on entry boundaries.
 * => returns the index range [first, last) of entries inside [start, end)
 */
function clipRange(map: VmMap, start: number, end: number): [number, number] {
  let i = map.indexOf(start);
  if (i >= 0) {
    uvmMapClip(map, i, start);
    if (map.entries[i].start < start) i++;
  } else i = -i - 1;
  let j = i;
  while (j < map.entries.length && map.entries[j].start < end) {
    uvmMapClip(map, j, end);
    j++;
  }
  return [i, j];
}

/**
 * uvmUnmap: remove every mapping in [start, end) (uvm_unmap).
 * => unmapped parts of the range are fine (as munmap)
 * => anons nobody else references are freed; objects lose a reference
 */
export function uvmUnmap(map: VmMap, start: number, end: number): void {
  const [i, j] = clipRange(map, start, end);
  const gone = map.entries.splice(i, j - i);
  for (const e of gone) uvmMapEntryDispose(map, e);
  map.version++;
}

/** uvmMapEntryDispose: tear down one entry's mappings and references. */
export function uvmMapEntryDispose(map: VmMap, e: MapEntry): void {
  map.pmap.remove(atop(e.start), e.npages);
  if (e.amap !== null) amapUnref(e.amap, e.amapSlot, e.npages);
  e.amap = null;
  if (e.object !== null) e.object.detach();
  e.object = null;
}

/**
 * uvmMapProtect: set the protection of [start, end) (uvm_map_protect).
 * => throws ENOMEM if part of the range is unmapped, EACCES if prot exceeds an entry's maxProt
 */
export function uvmMapProtect(map: VmMap, start: number, end: number, prot: number): void {
  let va = start;
  for (let i = map.indexOf(start); va < end; i++) {
    const e = i < 0 ? undefined : map.entries[i];
    if (e === undefined || e.start > va)
      throw new KernelError('ENOMEM', `uvm_map_protect: ${hex(va)} is not mapped`);
    if ((prot & ~e.maxProt) !== 0) {
      throw new KernelError('EACCES', `uvm_map_protect: ${hex(e.start)} allows at most ${e.maxProt}`);
    }
    va = e.end;
  }
  const [i, j] = clipRange(map, start, end);
  for (let k = i; k < j; k++) {
    const e = map.entries[k];
    e.prot = prot;
    map.pmap.protect(atop(e.start), e.npages, prot);
  }
  map.version++;
}

/**
 * uvmMapAmapCopy: give an entry that needs one its own amap (amap_copy).
 * => an entry with no amap gets a fresh one; a sole reference is simply kept; else the slots are copied
 */
export function uvmMapAmapCopy(map: VmMap, e: MapEntry): void {
  if (e.amap === null) {
    e.amap = amapAlloc(map.uvm, e.npages);
    e.amapSlot = 0;
  } else if (e.amap.ref > 1) {
    const copy = amapCopy(e.amap, e.amapSlot, e.npages);
    amapUnref(e.amap, e.amapSlot, e.npages);
    e.amap = copy;
    e.amapSlot = 0;
  }
  e.needsCopy = false;
  map.version++;
}

/**
 * uvmMapFork: fill a child's empty map from its parent's, entry by entry by inheritance (uvmspace_fork).
 * => COPY entries become copy-on-write in both (needs-copy; the parent's mappings lose write)
 * => SHARE entries share the same amap and object
 */
export function uvmMapFork(parent: VmMap, child: VmMap): void {
  for (const e of parent.entries) {
    if (e.inheritance === Inherit.NONE) continue;
    if (e.inheritance === Inherit.SHARE && e.copyOnWrite && (e.needsCopy || e.amap === null)) {
      uvmMapAmapCopy(parent, e);
    }
    const c = e.clone();
    if (e.amap !== null) amapRef(e.amap, e.amapSlot, e.npages);
    if (e.object !== null) e.object.reference();
    if (e.inheritance === Inherit.COPY && e.copyOnWrite) {
      e.needsCopy = true;
      c.needsCopy = true;
      parent.pmap.protect(atop(e.start), e.npages, e.prot & ~Prot.WRITE);
    }
    child.entries.push(c);
  }
  parent.version++;
  child.version++;
}
