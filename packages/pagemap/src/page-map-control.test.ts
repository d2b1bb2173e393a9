/*
 * What a walkthrough control may say, over random bodies (fast-check): parseControl never throws, and
 * accepts a body only when it is exactly {"action": one of the three, "step": a positive integer} --
 * whatever else a viewer (or a page that is not ours) sends is a 400 that names what is wrong.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseControl } from './page-map-control.js';
import { WALKTHROUGH_ACTIONS } from './page-map-walkthrough.js';

/* isControl: the one shape a control may have */
function isControl(v: unknown): boolean {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return false;
  const keys = Object.keys(v);
  if (keys.length !== 2 || !keys.includes('action') || !keys.includes('step')) return false;
  const { action, step } = v as Record<string, unknown>;
  return (
    (WALKTHROUGH_ACTIONS as readonly unknown[]).includes(action) &&
    typeof step === 'number' &&
    Number.isSafeInteger(step) &&
    step >= 1
  );
}

describe('parseControl', () => {
  it('accepts exactly {action, step} with one of the three actions and a positive step', () => {
    for (const action of WALKTHROUGH_ACTIONS)
      expect(parseControl(JSON.stringify({ step: 7, action }))).toEqual({ action, step: 7 });
  });

  it('never throws, and refuses with 400 every body that is not exactly a control', () => {
    const value = fc.oneof(
      fc.jsonValue(),
      fc.record(
        {
          action: fc.oneof(fc.constantFrom(...WALKTHROUGH_ACTIONS, 'exec', 'PAUSE', ''), fc.jsonValue()),
          step: fc.oneof(fc.integer({ min: -3, max: 5 }), fc.double(), fc.string(), fc.constant(2 ** 53)),
          extra: fc.jsonValue(),
        },
        { requiredKeys: [] },
      ),
    );
    const body = fc.oneof(
      value.map((v) => JSON.stringify(v) ?? 'undefined'),
      fc.string({ maxLength: 40 }),
    );
    fc.assert(
      fc.property(body, (text) => {
        const got = parseControl(text);
        let parsed: unknown;
        let json = true;
        try {
          parsed = JSON.parse(text);
        } catch {
          json = false;
        }
        if (json && isControl(parsed)) {
          const { action, step } = parsed as { action: string; step: number };
          expect(got).toEqual({ action, step });
        } else {
          expect(got).toMatchObject({ status: 400 });
          expect((got as { error: string }).error.length).toBeGreaterThan(0);
        }
      }),
      { numRuns: 500 },
    );
  });
});
