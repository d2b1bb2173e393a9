/*
 * uvm_amap.ts: anonymous maps, the upper layer of a map entry.
 *
 * An amap is an array of slots, each empty or holding an anon. A map entry points at a range of slots
 * (its slot offset and its size in pages). Several entries may share one amap -- after a clip, after a
 * fork of a shared mapping, or after a fork of a private one until the first write copies it (needs-copy).
 * `ref` counts the entries; `ppref` counts, per slot, the entries whose range covers it (NetBSD's
 * per-page reference counts), so that unmapping part of a shared amap frees exactly the anons nobody
 * can reach any more.
 */
import { panic } from './errors.js';
import { Prot } from './param.js';
import type { Uvm } from './uvm.js';
import { type Anon, uvmAnonUnref } from './uvm_anon.js';

/**
 * Amap: an anonymous map (NetBSD's vm_amap): the anons of a map entry's range, one slot per page, shared by
 * reference after fork.
 */
export class Amap {
  /** the VM system it belongs to */
  readonly uvm: Uvm;
  /** the anon of each slot, or null */
  readonly slots: (Anon | null)[];
  /** per-page references: how many entries cover each slot (NetBSD's ppref) */
  readonly ppref: Int32Array;
  /** entries that reference the amap */
  ref = 1;
  /** slots holding an anon */
  nused = 0;

  /** amapAlloc makes amaps */
  constructor(uvm: Uvm, nslots: number) {
    this.uvm = uvm;
    this.slots = new Array<Anon | null>(nslots).fill(null);
    this.ppref = new Int32Array(nslots).fill(1);
  }
}

/** amapAlloc: a new amap of n empty slots, referenced once over its whole range. */
export function amapAlloc(uvm: Uvm, nslots: number): Amap {
  uvm.amaps++;
  return new Amap(uvm, nslots);
}

/** amapLookup: the anon in a slot, or null (amap_lookup) */
export function amapLookup(amap: Amap, slot: number): Anon | null {
  return amap.slots[slot];
}

/**
 * amapAdd: put an anon in a slot.
 * => replace: the slot must hold an anon (whose reference the caller has dealt with); else it must be empty
 * => replacing in an amap that other entries share (e.g. after a fork of an inherit-share mapping):
 *    every mapping of the old anon's page is removed, since some may be in those other maps and would
 *    go stale (NetBSD's amap_add on an AMAP_SHARED amap)
 */
export function amapAdd(amap: Amap, slot: number, anon: Anon, replace: boolean): void {
  const old = amap.slots[slot];
  if (replace !== (old !== null)) panic(`amap_add: slot ${slot} ${replace ? 'empty' : 'in use'}`);
  if (!replace) amap.nused++;
  else if (amap.ref > 1 && old!.page !== null) amap.uvm.mmu.pageProtect(old!.page.frame, Prot.NONE);
  amap.slots[slot] = anon;
}

/** amapRef: one more entry covers [slot, slot + n). */
export function amapRef(amap: Amap, slot: number, n: number): void {
  amap.ref++;
  for (let i = slot; i < slot + n; i++) amap.ppref[i]++;
}

/**
 * amapUnref: an entry covering [slot, slot + n) goes away (or shrinks by that range: pass
 * dropEntry = false).
 * => anons in slots nobody covers any more lose their amap reference
 */
export function amapUnref(amap: Amap, slot: number, n: number, dropEntry = true): void {
  for (let i = slot; i < slot + n; i++) {
    if (--amap.ppref[i] > 0) continue;
    if (amap.ppref[i] < 0) panic(`amap_unref: slot ${i} over-released`);
    const anon = amap.slots[i];
    if (anon !== null) {
      amap.slots[i] = null;
      amap.nused--;
      uvmAnonUnref(anon);
    }
  }
  if (dropEntry && --amap.ref === 0) {
    if (amap.nused !== 0) panic('amap_unref: last reference gone with anons left');
    amap.uvm.amaps--;
  }
}

/**
 * amapCopy: a private copy of [slot, slot + n) for an entry that needs one (amap_copy).
 * => the new amap shares the anons (each gains a reference); the caller unrefs the old range
 */
export function amapCopy(old: Amap, slot: number, n: number): Amap {
  const amap = amapAlloc(old.uvm, n);
  for (let i = 0; i < n; i++) {
    const anon = old.slots[slot + i];
    if (anon === null) continue;
    anon.ref++;
    amap.slots[i] = anon;
    amap.nused++;
  }
  return amap;
}
