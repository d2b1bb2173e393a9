/*
 * uvm_km.ts: kernel virtual memory for wired mappings (uvm_km_valloc and friends).
 *
 * The kernel maps pages it borrows -- a loaned mbuf's pages, above all -- into its own address space
 * with kenter. KernelVa hands out ranges of kernel virtual pages (first fit over a sorted free list,
 * coalescing on free), and kernel accesses go through the kernel pmap's protection checks: a write to
 * a read-only kernel mapping (a loaned page) is a fatal fault, never a copy.
 */
import { KernelError, panic } from './errors.js';
import { hex, PAGE_SHIFT, PAGE_SIZE, Prot } from './param.js';
import type { Pmap } from './pmap.js';
import { Uvm } from './uvm.js';
import {
  checkPageArg,
  uvmPageAlloc,
  uvmPageFree,
  uvmPageInsert,
  uvmPageUnbusy,
  uvmPageUnwire,
  uvmPageWire,
  type VmPage,
} from './uvm_page.js';
import { checkPglistArgs, type PglistOptions, uvmPglistAlloc } from './uvm_pglist.js';

/** kernel space starts at 2 GiB (above every user map) */
export const VM_MIN_KERNEL_ADDRESS = 0x8000_0000;
/** The size of the kernel's address space, in pages (1 GiB). */
export const KERNEL_VA_PAGES = 1 << 18;

/**
 * KernelVa: the kernel's address space (kernel.kva): allocate a range, kenter pages at it, kremove and free
 * it.
 *
 * @hideconstructor
 */
export class KernelVa {
  private readonly pmap: Pmap;
  /* free extents [vpn, npages], sorted by vpn */
  private readonly freeList: [number, number][];
  /** @readonly pages of kernel address space allocated */
  allocated = 0;

  /** @internal a Kernel makes its address space at boot */
  constructor(pmap: Pmap) {
    this.pmap = pmap;
    this.freeList = [[VM_MIN_KERNEL_ADDRESS >>> PAGE_SHIFT, KERNEL_VA_PAGES]];
  }

  /**
   * alloc: npages of kernel virtual space (unmapped).
   * => npages a positive integer (EINVAL)
   * => returns the kernel va; throws ENOMEM when no range is free
   */
  alloc(npages: number): number {
    checkPages('uvm_km_valloc', npages);
    for (let i = 0; i < this.freeList.length; i++) {
      const ext = this.freeList[i];
      if (ext[1] < npages) continue;
      const vpn = ext[0];
      ext[0] += npages;
      ext[1] -= npages;
      if (ext[1] === 0) this.freeList.splice(i, 1);
      this.allocated += npages;
      return vpn * PAGE_SIZE;
    }
    throw new KernelError('ENOMEM', `uvm_km_valloc: no ${npages} pages of kernel va`);
  }

  /**
   * free: give back a range from alloc (its mappings must be gone).
   * => va page-aligned and npages a positive integer (EINVAL); panics if the range is already free
   */
  free(va: number, npages: number): void {
    checkPages('uvm_km_free', npages);
    if (!Number.isSafeInteger(va) || va % PAGE_SIZE !== 0) {
      throw new KernelError('EINVAL', `uvm_km_free: bad address ${String(va)}`);
    }
    const vpn = va / PAGE_SIZE;
    let i = 0;
    while (i < this.freeList.length && this.freeList[i][0] < vpn) i++;
    /* (never index out of bounds: a read at -1 or past the end is a slow dictionary lookup in V8) */
    const prev = i > 0 ? this.freeList[i - 1] : undefined;
    const next = i < this.freeList.length ? this.freeList[i] : undefined;
    if ((prev && prev[0] + prev[1] > vpn) || (next && vpn + npages > next[0])) {
      panic(`uvm_km_free: ${hex(va)} (+${npages} pages) is already free`);
    }
    this.allocated -= npages;
    if (prev && prev[0] + prev[1] === vpn) {
      prev[1] += npages;
      if (next && prev[0] + prev[1] === next[0]) {
        prev[1] += next[1];
        this.freeList.splice(i, 1);
      }
    } else if (next && vpn + npages === next[0]) {
      next[0] = vpn;
      next[1] += npages;
    } else {
      this.freeList.splice(i, 0, [vpn, npages]);
    }
  }

  /**
   * @internal
   * access: translate a kernel access; a fault in the kernel is fatal.
   * => returns the frame; panics on an unmapped address or a write to a read-only mapping
   */
  access(va: number, write: boolean): number {
    const vpn = Math.floor(va / PAGE_SIZE);
    const frame = this.pmap.translate(vpn, write ? Prot.WRITE : Prot.READ);
    if (frame >= 0) return frame;
    if (this.pmap.extract(vpn) < 0) panic(`kernel page fault: ${hex(va)} is not mapped`);
    return panic(`kernel page fault: write to read-only (loaned?) page at ${hex(va - (va % PAGE_SIZE))}`);
  }
}

/* checkUvm: EINVAL naming fn unless uvm is a kernel's VM system (kernel.uvm) */
function checkUvm(fn: string, uvm: unknown): asserts uvm is Uvm {
  if (!(uvm instanceof Uvm)) throw new KernelError('EINVAL', `${fn}: not a kernel's uvm`);
}

function checkPages(fn: string, npages: number): void {
  if (!Number.isSafeInteger(npages) || npages < 1) {
    throw new KernelError('EINVAL', `${fn}: bad page count ${String(npages)}`);
  }
}

/**
 * uvmKmAllocPage: one wired page of kernel memory, owned by the kernel object, zero-filled
 * (uvm_km_alloc of a page). Waits for the pagedaemon when memory is short.
 * => throws ENOMEM when nothing can be reclaimed
 */
export async function uvmKmAllocPage(uvm: Uvm): Promise<VmPage> {
  checkUvm('uvm_km_alloc', uvm);
  for (;;) {
    const pg = uvmPageAllocAnyFrame(uvm);
    if (pg !== null) return pg;
    await uvm.wait('uvm_km_alloc');
  }
}

/* uvmPageAllocAnyFrame: a free page as kernel memory (the kernel object holds it at its frame) */
function uvmPageAllocAnyFrame(uvm: Uvm): VmPage | null {
  const pg = uvmPageAlloc(uvm, null, 0, null, true);
  if (pg === null) return null;
  uvmPageInsert(pg, uvm.kernelObject, pg.frame);
  uvmPageWire(pg);
  uvmPageUnbusy(pg);
  return pg;
}

/**
 * uvmKmFreePage: give a page from uvmKmAllocPage back (uvm_km_free).
 * => EINVAL if pg isn't a vm_page; a KernelPanic if it isn't kernel memory
 */
export function uvmKmFreePage(pg: VmPage): void {
  checkPageArg('uvm_km_free', pg);
  if (pg.uobject !== pg.uvm.kernelObject) panic(`uvm_km_free: page ${pg.frame} isn't kernel memory`);
  uvmPageUnwire(pg);
  uvmPageFree(pg);
}

/**
 * uvmKmAllocContig: npages of physically contiguous wired kernel memory (uvm_pglistalloc with
 * waitok): uvmPglistAlloc, waiting for the pagedaemon a few times when no run is free.
 * => arguments as uvmPglistAlloc's (EINVAL, before anything is done)
 * => returns the pages in frame order, kernel memory, zero-filled unless opts.zero is false
 * => throws ENOMEM when three pagedaemon passes still leave no run (every try counts in
 *    uvmexp.pglistAllocs, every miss in pglistFailed)
 */
export async function uvmKmAllocContig(
  uvm: Uvm,
  npages: number,
  opts: PglistOptions = {},
): Promise<VmPage[]> {
  checkPglistArgs('uvm_pglistalloc', uvm, npages, opts);
  for (let tries = 0; ; tries++) {
    const run = uvmPglistAlloc(uvm, npages, opts);
    if (run !== null) return run;
    if (tries === 3) break;
    await uvm.pdaemon?.run();
  }
  throw new KernelError('ENOMEM', `uvm_pglistalloc: no ${npages} contiguous free pages`);
}
