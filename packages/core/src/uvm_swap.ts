/*
 * uvm_swap.ts: the swap device, where the pagedaemon puts anonymous pages it evicts.
 *
 * Swap is a second ArrayBuffer of swapPages slots. Slot numbers start at 1 (0 means "no slot", as
 * an anon's an_swslot does). Reads and writes are asynchronous, like disk I/O: they pass through
 * Uvm.io(), where a test can hold an I/O open and change the world meanwhile.
 */
import { KernelError, panic } from './errors.js';
import { PAGE_SHIFT, PAGE_SIZE } from './param.js';
import type { Uvm } from './uvm.js';

/** The largest swap a Kernel boots with, in pages (4 GiB). */
export const MAX_SWAP_PAGES = 1 << 20;

/** Swap: the swap device, slots of a page each (slot 0 means none), held in memory. */
export class Swap {
  /** swap in pages */
  readonly nslots: number;
  private readonly store: Uint8Array;
  private readonly freeSlots: number[] = [];
  private readonly inUse: Uint8Array;

  /** => nslots: an integer in 0..MAX_SWAP_PAGES (else EINVAL); 0 means no swap */
  constructor(nslots: number) {
    if (!Number.isSafeInteger(nslots) || nslots < 0 || nslots > MAX_SWAP_PAGES) {
      throw new KernelError('EINVAL', `uvm_swap: bad swapPages ${String(nslots)} (0..${MAX_SWAP_PAGES})`);
    }
    this.nslots = nslots;
    this.store = new Uint8Array(nslots * PAGE_SIZE);
    this.inUse = new Uint8Array(nslots + 1);
    for (let s = nslots; s >= 1; s--) this.freeSlots.push(s);
  }

  /** slots in use */
  get used(): number {
    return this.nslots - this.freeSlots.length;
  }

  /** alloc: a free slot, or 0 when swap is full */
  alloc(): number {
    const s = this.freeSlots.pop() ?? 0;
    if (s) this.inUse[s] = 1;
    return s;
  }

  /** free: give a slot back */
  free(slot: number): void {
    if (slot < 1 || slot > this.nslots || !this.inUse[slot]) panic(`uvm_swap_free: bad slot ${slot}`);
    this.inUse[slot] = 0;
    this.freeSlots.push(slot);
  }

  /** isAllocated: is the slot in use? */
  isAllocated(slot: number): boolean {
    return slot >= 1 && slot <= this.nslots && this.inUse[slot] === 1;
  }

  /** write / read: page-sized transfers between a frame and a slot, asynchronous */
  async write(uvm: Uvm, slot: number, frame: number): Promise<void> {
    await uvm.io({ kind: 'swapout', slot, frame });
    const at = (slot - 1) * PAGE_SIZE;
    this.store.set(uvm.ram.bytes.subarray(frame << PAGE_SHIFT, (frame + 1) << PAGE_SHIFT), at);
  }

  /** read: see write */
  async read(uvm: Uvm, slot: number, frame: number): Promise<void> {
    await uvm.io({ kind: 'swapin', slot, frame });
    const at = (slot - 1) * PAGE_SIZE;
    uvm.ram.bytes.set(this.store.subarray(at, at + PAGE_SIZE), frame << PAGE_SHIFT);
  }
}
