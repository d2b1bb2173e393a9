/*
 * physmem.ts: the machine's RAM.
 *
 * All of physical memory is one ArrayBuffer of physPages x PAGE_SIZE bytes, allocated at boot and never
 * resized. A page frame is the PAGE_SIZE bytes at `frame << PAGE_SHIFT`. Each frame has one cached
 * Buffer view made at boot, so handing a frame to the network (or to a test) allocates nothing: the
 * view *is* the memory, the way a NIC's DMA engine sees RAM.
 */
import { KernelError } from './errors.js';
import { PAGE_SHIFT, PAGE_SIZE } from './param.js';

/** 2^18 frames = 1 GiB of toy RAM: the most one kernel may have. */
export const MAX_PHYS_PAGES = 1 << 18;

/**
 * PhysMem: a machine's RAM, one ArrayBuffer, with one cached Buffer view per frame. Users may read it (a
 * page's bytes, through pg.bytes()); writing it bypasses the MMU and every loan.
 *
 * @hideconstructor
 */
export class PhysMem {
  /** RAM in pages */
  readonly npages: number;
  /** @internal all of RAM */
  readonly buffer: ArrayBuffer;
  /** @internal all of RAM, as bytes */
  readonly bytes: Uint8Array;
  private readonly views: Buffer[];

  /**
   * @internal the VM system makes RAM at boot
   * => npages: a positive integer, at most MAX_PHYS_PAGES (else EINVAL)
   */
  constructor(npages: number) {
    if (!Number.isSafeInteger(npages) || npages < 1 || npages > MAX_PHYS_PAGES) {
      throw new KernelError('EINVAL', `physmem: bad physPages ${String(npages)} (1..${MAX_PHYS_PAGES})`);
    }
    this.npages = npages;
    this.buffer = new ArrayBuffer(npages * PAGE_SIZE);
    this.bytes = new Uint8Array(this.buffer);
    this.views = new Array<Buffer>(npages);
    for (let f = 0; f < npages; f++) this.views[f] = Buffer.from(this.buffer, f << PAGE_SHIFT, PAGE_SIZE);
  }

  /** frame: the cached view of one frame (no allocation). */
  frame(f: number): Buffer {
    return this.views[f];
  }

  /** @internal zero: fill frame f with zeros */
  zero(f: number): void {
    this.views[f].fill(0);
  }

  /** @internal copy: copy frame src to frame dst */
  copy(src: number, dst: number): void {
    this.bytes.copyWithin(dst << PAGE_SHIFT, src << PAGE_SHIFT, (src + 1) << PAGE_SHIFT);
  }
}
