/*
 * pmap.ts: the MMU.
 *
 * Every address space has a Pmap: a page table indexed by virtual page number (vpn), held in typed
 * arrays (frame + 1 in `frames`, 0 meaning invalid; protection and referenced/modified bits in `bits`).
 * Every access to memory, by a user or by the kernel, goes through `translate`, which checks the
 * protection and sets the referenced and modified bits the pagedaemon reads, or returns -1: a fault.
 *
 * The Mmu owns the pv table: for each frame, the list of (pmap, vpn) that map it. It is what lets
 * pageProtect() downgrade or remove every mapping of a frame at once -- the primitive page loanout
 * rests on (the first loan of a page makes all its mappings read-only). Like a real pmap it keeps a
 * frame's modified bit when a mapping goes away, until the VM system reads and clears it.
 *
 * The kernel pmap is special, as in NetBSD: kenter() mappings are unmanaged (no pv entry), wired, and
 * never touched by pageProtect(). A loaned page entered read-only into kernel space stays read-only,
 * and a kernel write to it is a fatal fault, not a copy-on-write.
 */
import { panic } from './errors.js';
import { hex, PAGE_SIZE, Prot } from './param.js';
import type { PhysMem } from './physmem.js';

/** bits[] layout: low three bits are R/W/X, then referenced, modified. */
export const PTE_REF = 8;
/** bits[]: the page was written through this mapping (modified) */
export const PTE_MOD = 16;
const PTE_PROT = Prot.ALL;

/** A pv entry: one managed mapping of a frame. */
export interface PvEntry {
  /** the address space of the mapping */
  pmap: Pmap;
  /** the virtual page number it maps the frame at */
  vpn: number;
  /** the frame's next pv entry */
  next: PvEntry | null;
}

/**
 * Mmu: the machine's MMU -- a page table per address space (Pmap), and per frame the list of its managed
 * mappings (pv) and the attributes saved from removed ones.
 */
export class Mmu {
  /** the RAM it maps */
  readonly ram: PhysMem;
  /** pv heads by frame */
  readonly pv: (PvEntry | null)[];
  /** per-frame attributes saved from removed mappings (PTE_MOD) */
  readonly attrs: Uint8Array;
  /** the kernel's own address space */
  readonly kernelPmap: Pmap;

  /** the VM system makes its MMU at boot */
  constructor(ram: PhysMem) {
    this.ram = ram;
    this.pv = new Array<PvEntry | null>(ram.npages).fill(null);
    this.attrs = new Uint8Array(ram.npages);
    this.kernelPmap = new Pmap(this, true);
  }

  /** createPmap: a new, empty user address space */
  createPmap(): Pmap {
    return new Pmap(this, false);
  }

  /**
   * pageProtect: lower the protection of every managed mapping of a frame (pmap_page_protect).
   * => prot NONE removes every mapping; READ (or READ|EXEC) write-protects them
   * => skips the store when a mapping is already at or below prot
   */
  pageProtect(frame: number, prot: number): void {
    if (prot === Prot.NONE) {
      this.pageRemoveAll(frame);
      return;
    }
    const drop = PTE_PROT & ~prot;
    for (let pv = this.pv[frame]; pv !== null; pv = pv.next) {
      const b = pv.pmap.bits[pv.vpn];
      if ((b & drop) !== 0) pv.pmap.bits[pv.vpn] = b & ~drop;
    }
  }

  private pageRemoveAll(frame: number): void {
    let pv = this.pv[frame];
    this.pv[frame] = null;
    for (; pv !== null; pv = pv.next) pv.pmap.zap(pv.vpn, frame);
  }

  /** isModified: did any mapping (now or since the last clearModify) write this frame? */
  isModified(frame: number): boolean {
    if (this.attrs[frame] & PTE_MOD) return true;
    for (let pv = this.pv[frame]; pv !== null; pv = pv.next) {
      if (pv.pmap.bits[pv.vpn] & PTE_MOD) return true;
    }
    return false;
  }

  /** clearModify: forget that the frame was written (after a write-back) */
  clearModify(frame: number): void {
    this.attrs[frame] &= ~PTE_MOD;
    for (let pv = this.pv[frame]; pv !== null; pv = pv.next) pv.pmap.bits[pv.vpn] &= ~PTE_MOD;
  }

  /** isReferenced / clearReference: the pagedaemon's second-chance bit. */
  isReferenced(frame: number): boolean {
    for (let pv = this.pv[frame]; pv !== null; pv = pv.next) {
      if (pv.pmap.bits[pv.vpn] & PTE_REF) return true;
    }
    return false;
  }

  /** clearReference: clear the frame's referenced bit in every mapping (the pagedaemon's second chance) */
  clearReference(frame: number): void {
    for (let pv = this.pv[frame]; pv !== null; pv = pv.next) pv.pmap.bits[pv.vpn] &= ~PTE_REF;
  }

  /** mappings: the managed mappings of a frame, for invariants and the UI. */
  mappings(frame: number): { pmap: Pmap; vpn: number; prot: number }[] {
    const out: { pmap: Pmap; vpn: number; prot: number }[] = [];
    for (let pv = this.pv[frame]; pv !== null; pv = pv.next) {
      out.push({ pmap: pv.pmap, vpn: pv.vpn, prot: pv.pmap.bits[pv.vpn] & PTE_PROT });
    }
    return out;
  }

  /** maxProt: the highest protection any managed mapping of the frame grants. */
  maxProt(frame: number): number {
    let p = 0;
    for (let pv = this.pv[frame]; pv !== null; pv = pv.next) p |= pv.pmap.bits[pv.vpn] & PTE_PROT;
    return p;
  }

  /** pvInsert: record a managed mapping of a frame */
  pvInsert(frame: number, pmap: Pmap, vpn: number): void {
    this.pv[frame] = { pmap, vpn, next: this.pv[frame] };
  }

  /** pvRemove: forget a managed mapping of a frame (its modified bit is kept in attrs) */
  pvRemove(frame: number, pmap: Pmap, vpn: number): void {
    let prev: PvEntry | null = null;
    for (let pv = this.pv[frame]; pv !== null; prev = pv, pv = pv.next) {
      if (pv.pmap === pmap && pv.vpn === vpn) {
        if (prev === null) this.pv[frame] = pv.next;
        else prev.next = pv.next;
        return;
      }
    }
    panic(`pmap_remove: no pv entry for frame ${frame} at vpn ${hex(vpn)}`);
  }
}

/** Pmap: one address space's page table: a frame and bits per virtual page number, in typed arrays. */
export class Pmap {
  /** the MMU it belongs to */
  readonly mmu: Mmu;
  /** the kernel's address space (unmanaged mappings, no pv entries) */
  readonly isKernel: boolean;
  /** frame + 1 per vpn; 0 = invalid */
  frames: Int32Array;
  /** PTE bits per vpn */
  bits: Uint8Array;
  /** valid entries */
  resident = 0;

  /** the MMU makes page tables (createPmap, and the kernel's at boot) */
  constructor(mmu: Mmu, isKernel: boolean) {
    this.mmu = mmu;
    this.isKernel = isKernel;
    this.frames = new Int32Array(256);
    this.bits = new Uint8Array(256);
  }

  private grow(vpn: number): void {
    let n = this.frames.length;
    while (n <= vpn) n *= 2;
    const f = new Int32Array(n);
    f.set(this.frames);
    const b = new Uint8Array(n);
    b.set(this.bits);
    this.frames = f;
    this.bits = b;
  }

  /**
   * enter: map vpn to frame with prot (pmap_enter), replacing any previous mapping there.
   * => managed mapping: recorded in the frame's pv list
   */
  enter(vpn: number, frame: number, prot: number): void {
    if (this.isKernel) panic('pmap_enter: use kenter for kernel mappings');
    if (vpn >= this.frames.length) this.grow(vpn);
    const old = this.frames[vpn] - 1;
    if (old === frame) {
      this.bits[vpn] = (this.bits[vpn] & ~PTE_PROT) | prot;
      return;
    }
    if (old >= 0) this.remove(vpn, 1);
    this.frames[vpn] = frame + 1;
    this.bits[vpn] = prot;
    this.resident++;
    this.mmu.pvInsert(frame, this, vpn);
  }

  /** remove: unmap [vpn, vpn + n) (pmap_remove). */
  remove(vpn: number, n: number): void {
    const end = Math.min(vpn + n, this.frames.length);
    for (let v = vpn; v < end; v++) {
      const f = this.frames[v] - 1;
      if (f < 0) continue;
      if (!this.isKernel) this.mmu.pvRemove(f, this, v);
      this.zap(v, f);
    }
  }

  /** zap: clear one valid entry, saving its modified bit in the frame's attributes. */
  zap(vpn: number, frame: number): void {
    if (this.bits[vpn] & PTE_MOD) this.mmu.attrs[frame] |= PTE_MOD;
    this.frames[vpn] = 0;
    this.bits[vpn] = 0;
    this.resident--;
  }

  /** protect: lower the protection of [vpn, vpn + n) to at most prot (pmap_protect). */
  protect(vpn: number, n: number, prot: number): void {
    if (prot === Prot.NONE) {
      this.remove(vpn, n);
      return;
    }
    const end = Math.min(vpn + n, this.frames.length);
    for (let v = vpn; v < end; v++) {
      if (this.frames[v] !== 0) this.bits[v] &= ~(PTE_PROT & ~prot);
    }
  }

  /**
   * translate: the MMU's check of one access.
   * => returns the frame, setting referenced (and modified for a write), or -1 for a fault
   */
  translate(vpn: number, access: number): number {
    if (vpn >= this.frames.length) return -1;
    const f = this.frames[vpn] - 1;
    if (f < 0) return -1;
    const b = this.bits[vpn];
    if ((b & access) !== access) return -1;
    this.bits[vpn] = b | PTE_REF | (access & Prot.WRITE ? PTE_MOD : 0);
    return f;
  }

  /** extract: the frame mapped at vpn, or -1 (pmap_extract; no access check). */
  extract(vpn: number): number {
    return vpn < this.frames.length ? this.frames[vpn] - 1 : -1;
  }

  /** protAt: the protection of the mapping at vpn (NONE when unmapped) */
  protAt(vpn: number): number {
    return vpn < this.frames.length ? this.bits[vpn] & PTE_PROT : 0;
  }

  /**
   * kenter: wired, unmanaged kernel mapping (pmap_kenter_pa).
   * => vpn must not be mapped already (panic)
   */
  kenter(vpn: number, frame: number, prot: number): void {
    if (!this.isKernel) panic('pmap_kenter_pa: not the kernel pmap');
    if (vpn >= this.frames.length) this.grow(vpn);
    if (this.frames[vpn] !== 0) panic(`pmap_kenter_pa: kernel va ${hex(vpn * PAGE_SIZE)} already mapped`);
    this.frames[vpn] = frame + 1;
    this.bits[vpn] = prot;
    this.resident++;
  }

  /** kremove: remove kernel mappings made by kenter (pmap_kremove). */
  kremove(vpn: number, n: number): void {
    if (!this.isKernel) panic('pmap_kremove: not the kernel pmap');
    this.remove(vpn, n);
  }

  /** forEachValid: visit every valid entry (for invariants and teardown). */
  forEachValid(fn: (vpn: number, frame: number, bits: number) => void): void {
    for (let v = 0; v < this.frames.length; v++) {
      if (this.frames[v] !== 0) fn(v, this.frames[v] - 1, this.bits[v]);
    }
  }
}
