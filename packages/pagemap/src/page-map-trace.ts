/*
 * page-map-trace.ts: what the page map keeps of the kernel's trace between two updates.
 *
 * The kernel tells every trace listener each event as it happens (kernel.onTrace), in the middle of
 * its work, so the listener only notes it down. Between two updates the page map keeps:
 *
 *   - the latest TRACE_MAX events, to list on the page (older ones are dropped, and counted);
 *   - how many events of each kind there were, all of them, dropped or not: the page's rates ("pages
 *     in by transfer, per second") are exact even when the list is not;
 *   - which frames came into a process by page transfer (`transfer`): the socket layer's receive
 *     area is kernel memory, and a transfer makes one of its pages a process's, with no copy. Once it
 *     is the process's, nothing in the frame's state tells it from a page the process wrote itself
 *     (uvm_pageinfo.ts), so the page map remembers it, and the page marks those frames: the zero-copy
 *     echo's way in, beside its way out (on loan).
 *
 * A mark lasts while the frame can still be that page: an anon's, on loan to the kernel, an orphan,
 * or busy (being paged out). The page map forgets it when it sees the frame in any other state at an
 * update (free, kernel memory again -- a new receive area --, an object's, the zero page), and on a
 * `free` trace event. The kernel does not trace frees today (TraceKind has `free`, nothing sends it),
 * so a frame freed and taken again as another anon page between two updates keeps a mark it should
 * not: rare, and gone once the kernel traces its frees.
 */
import { FrameState, type TraceEvent, type TraceKind } from '@loanout/core';

/* the states a page that came in by transfer can be in: an anon's (on loan or not), or an orphan, or busy */
const CAN_BE_TRANSFERRED: boolean[] = [];
for (const st of [FrameState.ANON, FrameState.LOANED_TO_KERNEL, FrameState.ORPHAN, FrameState.BUSY])
  CAN_BE_TRANSFERRED[st] = true;

/** the trace events listed in one update (the oldest beyond this are dropped, and counted) */
export const TRACE_MAX = 512;

/** @internal the trace between two updates, and the frames that came in by page transfer */
export class TraceWindow {
  /** the events since the last update, the newest TRACE_MAX */
  events: TraceEvent[] = [];
  /** events dropped beyond TRACE_MAX */
  dropped = 0;
  /** how many of each kind, dropped ones too */
  kinds: Partial<Record<TraceKind, number>> = {};
  /** @internal one bit per frame: it came into a process by page transfer and has not been seen free since */
  readonly arrived: Uint8Array;
  private anyArrived = false;

  /** a window over a RAM of `frames` frames */
  constructor(frames: number) {
    this.arrived = new Uint8Array(Math.ceil(frames / 8));
  }

  /** push: one event, as the kernel reports it */
  push(ev: TraceEvent): void {
    if (this.events.length >= TRACE_MAX) {
      this.events.shift();
      this.dropped++;
    }
    this.events.push(ev);
    this.kinds[ev.kind] = (this.kinds[ev.kind] ?? 0) + 1;
    if (ev.kind === 'transfer') {
      this.arrived[ev.frame >> 3] |= 1 << (ev.frame & 7);
      this.anyArrived = true;
    } else if (ev.kind === 'free') this.arrived[ev.frame >> 3] &= ~(1 << (ev.frame & 7));
  }

  /** take: the events since the last take, how many were dropped, and the count of each kind */
  take(): { trace: TraceEvent[]; dropped: number; kinds: Partial<Record<TraceKind, number>> } {
    const out = { trace: this.events, dropped: this.dropped, kinds: this.kinds };
    this.events = [];
    this.dropped = 0;
    this.kinds = {};
    return out;
  }

  /** forgetGone: unmark the frames that cannot be a transferred page now (`states`: one FrameState code per frame) */
  forgetGone(states: Uint8Array): void {
    if (!this.anyArrived) return;
    let any = false;
    for (let i = 0; i < this.arrived.length; i++) {
      let bits = this.arrived[i];
      if (bits === 0) continue;
      for (let b = 0; b < 8; b++)
        if (bits & (1 << b) && !CAN_BE_TRANSFERRED[states[8 * i + b]]) bits &= ~(1 << b);
      this.arrived[i] = bits;
      any ||= bits !== 0;
    }
    this.anyArrived = any;
  }
}
