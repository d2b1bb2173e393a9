/*
 * What the page map keeps of the trace between two updates (TraceWindow), over random event sequences
 * (fast-check): every event is listed or counted as dropped, `kinds` counts them all, and a frame is
 * marked as come in by page transfer exactly when its last transfer/free event was a transfer and its
 * state, at the update, is one a transferred page can have (an anon's, on loan, an orphan, busy).
 */
import { FrameState, type TraceEvent, type TraceKind } from '@loanout/core';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { TRACE_MAX, TraceWindow } from './page-map-trace.js';

const FRAMES = 40;
const KINDS: TraceKind[] = ['loan', 'unloan', 'transfer', 'free', 'orphan'];
const CAN_BE: Set<number> = new Set([
  FrameState.ANON,
  FrameState.LOANED_TO_KERNEL,
  FrameState.ORPHAN,
  FrameState.BUSY,
]);

function marks(w: TraceWindow): number[] {
  const out: number[] = [];
  for (let f = 0; f < FRAMES; f++) if (w.arrived[f >> 3] & (1 << (f & 7))) out.push(f);
  return out;
}

describe('TraceWindow', () => {
  it('lists or counts every event, counts each kind, and marks exactly the frames still holding a transferred page', () => {
    const event = fc.record({
      kind: fc.constantFrom(...KINDS),
      frame: fc.integer({ min: 0, max: FRAMES - 1 }),
    });
    const round = fc.record({
      events: fc.array(event, { maxLength: 700 }),
      states: fc.array(fc.integer({ min: 0, max: 8 }), { minLength: FRAMES, maxLength: FRAMES }),
    });
    fc.assert(
      fc.property(fc.array(round, { minLength: 1, maxLength: 4 }), (rounds) => {
        const w = new TraceWindow(FRAMES);
        /* the model: a frame's mark, by its last transfer/free event and the states seen at updates */
        const model = new Set<number>();
        let time = 0;
        for (const { events, states } of rounds) {
          for (const e of events) {
            w.push({ ...e, time: time++ } as TraceEvent);
            if (e.kind === 'transfer') model.add(e.frame);
            if (e.kind === 'free') model.delete(e.frame);
          }
          const taken = w.take();
          expect(taken.trace.length + taken.dropped).toBe(events.length);
          expect(taken.trace.length).toBe(Math.min(events.length, TRACE_MAX));
          expect(taken.trace).toEqual(events.slice(-TRACE_MAX).map((e) => expect.objectContaining(e)));
          for (const k of KINDS) expect(taken.kinds[k] ?? 0).toBe(events.filter((e) => e.kind === k).length);
          w.forgetGone(Uint8Array.from(states));
          for (const f of [...model]) if (!CAN_BE.has(states[f])) model.delete(f);
          expect(marks(w)).toEqual([...model].sort((a, b) => a - b));
        }
      }),
      { numRuns: 200 },
    );
  });
});
