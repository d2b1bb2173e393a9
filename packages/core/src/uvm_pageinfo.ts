/*
 * uvm_pageinfo.ts: what every physical frame is doing, for people to look at (NetBSD's DDB
 * `show page` / uvm_page_printall, turned into data for the live page map).
 *
 * frameStates() fills one byte per frame with a state code -- cheap enough to call a few times a
 * second on the whole of RAM -- and frameInfo() describes one frame in full: owner, offset, loan and
 * wire counts, every user mapping of it, and for a free frame the free block it is part of (which
 * shows how fragmented free memory is: uvm_pgfl.ts). A page transferred into a process (uvm_transfer.ts)
 * is an anon's like any other: the `transfer` trace event is what tells it apart, when it happens.
 */
import { KernelError } from './errors.js';
import { PAGE_SIZE, Prot } from './param.js';
import type { Proc } from './proc.js';
import type { Uvm } from './uvm.js';
import { checkPageArg, PG_BUSY, PQ_FREE, QUEUE_NAMES, type VmPage } from './uvm_page.js';
import { VnodeObject } from './uvm_vnode.js';

/** Frame states, in the order the page map's legend lists them. */
export const FrameState = {
  FREE: 0,
  ANON: 1,
  OBJECT: 2,
  LOANED_TO_KERNEL: 3,
  LOANED_TO_ANON: 4,
  ORPHAN: 5,
  ZERO: 6,
  BUSY: 7,
  KERNEL: 8,
} as const;
/** One frame's state: a value of FrameState. */
export type FrameStateCode = (typeof FrameState)[keyof typeof FrameState];
/** The name of each FrameState, by code. */
export const FRAME_STATE_NAMES = [
  'free',
  'anon',
  'object',
  'loaned to kernel',
  'loaned to anon (O->A)',
  'orphan',
  'zero page',
  'busy',
  'kernel memory',
] as const;

/**
 * frameState: one frame's state code (the most telling one when several apply)
 * => EINVAL unless pg is a vm_page
 */
export function frameState(pg: VmPage): FrameStateCode {
  checkPageArg('frameState', pg);
  return stateOf(pg);
}

function stateOf(pg: VmPage): FrameStateCode {
  const uvm = pg.uvm;
  if (pg.queue === PQ_FREE) return FrameState.FREE;
  if (pg.flags & PG_BUSY) return FrameState.BUSY;
  if (pg.uobject === uvm.zeroObject) return FrameState.ZERO;
  if (pg.uobject === uvm.kernelObject) return FrameState.KERNEL;
  if (pg.loanCount > 0 && pg.isOrphan()) return FrameState.ORPHAN;
  if (pg.wireCount > 0) return FrameState.LOANED_TO_KERNEL;
  if (pg.uobject !== null && pg.uanon !== null) return FrameState.LOANED_TO_ANON;
  if (pg.uobject !== null) return FrameState.OBJECT;
  return FrameState.ANON;
}

/**
 * frameStates: every frame's state code, into `out` (allocated if not given)
 * => out.length must be at least physPages (EINVAL)
 */
export function frameStates(uvm: Uvm, out: Uint8Array = new Uint8Array(uvm.pages.length)): Uint8Array {
  if (!(out instanceof Uint8Array) || out.length < uvm.pages.length) {
    throw new KernelError('EINVAL', `frameStates: need a Uint8Array of ${uvm.pages.length} bytes`);
  }
  const pages = uvm.pages;
  for (let f = 0; f < pages.length; f++) out[f] = stateOf(pages[f]);
  return out;
}

/** One user mapping of a frame (kernel.frameInfo). */
export interface FrameMapping {
  /** the process */
  pid: number;
  /** the virtual address it maps the frame at */
  va: number;
  /** whether the mapping is writable now */
  writable: boolean;
}

/** kernel.frameInfo(frame): one frame in full, for people (DDB's `show page`). */
export interface FrameInfo {
  /** the frame number */
  frame: number;
  /** its state's name (FRAME_STATE_NAMES) */
  state: (typeof FRAME_STATE_NAMES)[number];
  /** the paging queue it is on: none, free, active, inactive */
  queue: (typeof QUEUE_NAMES)[number];
  /** who owns it, in words (an object, an anon, nobody) */
  owner: string;
  /** its page index in its object, or null */
  offset: number | null;
  /** loans of the page */
  loanCount: number;
  /** wirings of the page */
  wireCount: number;
  /** the anon owns it (clear for an O->A loan) */
  anonOwns: boolean;
  /** the page is BUSY */
  busy: boolean;
  /** every user mapping of it, by process */
  mappings: FrameMapping[];
  /** a free frame's block in the buddy free lists (its first frame and its size in pages); else null */
  freeBlock: { first: number; pages: number } | null;
}

/**
 * frameInfo: everything about one frame, with its user mappings named by process
 * => frame an integer in 0..physPages-1 (EINVAL)
 */
export function frameInfo(uvm: Uvm, procs: readonly Proc[], frame: number): FrameInfo {
  if (!Number.isInteger(frame) || frame < 0 || frame >= uvm.pages.length) {
    throw new KernelError('EINVAL', `frameInfo: no frame ${String(frame)}`);
  }
  const pg = uvm.pages[frame];
  const pidOf = new Map(procs.map((p) => [p.map.pmap, p.pid]));
  const block = uvm.free.blockOf(frame);
  return {
    frame,
    state: FRAME_STATE_NAMES[stateOf(pg)],
    queue: QUEUE_NAMES[pg.queue],
    owner: ownerOf(pg),
    offset: pg.uobject !== null ? pg.offset * PAGE_SIZE : null,
    loanCount: pg.loanCount,
    wireCount: pg.wireCount,
    anonOwns: pg.anonOwns,
    busy: (pg.flags & PG_BUSY) !== 0,
    mappings: uvm.mmu.mappings(frame).map((m) => ({
      pid: pidOf.get(m.pmap) ?? -1,
      va: m.vpn * PAGE_SIZE,
      writable: (m.prot & Prot.WRITE) !== 0,
    })),
    freeBlock: block === null ? null : { first: block[0], pages: 1 << block[1] },
  };
}

function ownerOf(pg: VmPage): string {
  const obj = pg.uobject;
  if (obj !== null) {
    const what = obj instanceof VnodeObject ? `vnode ${obj.path}` : `${obj.kind} object`;
    return pg.uanon !== null ? `${what} (lent to an anon)` : what;
  }
  if (pg.uanon !== null) return pg.anonOwns ? 'anon' : 'anon (borrowed, owner gone)';
  return pg.queue === PQ_FREE ? 'none' : 'none (orphan, alive for its loans)';
}
