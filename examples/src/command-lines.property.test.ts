/*
 * Properties of the examples' command lines and reports, over random input (fast-check): whatever
 * words a user types, reading the command line never throws (a throw is the stack trace users saw);
 * it asks for help, names one usage error in one line, or returns exactly the command's flags, each
 * of its kind. Report tables line up whatever the sizes of the numbers in them.
 */
import type { KernelStats } from '@loanout/core';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { type Command, readCommandLine, type Traffic, trafficLines } from './cli.js';
import { COW, cowTable } from './cow.js';
import { DEMO } from './demo.js';
import { ECHO_CLIENT } from './echo-client.js';
import { ECHO } from './echo-server.js';
import { SENDFILE } from './sendfile.js';

const COMMANDS: Command[] = [DEMO, ECHO, ECHO_CLIENT, SENDFILE, COW];

/* words a user might type: the command's own flags, with and without values, and anything else */
function word(cmd: Command): fc.Arbitrary<string> {
  const flags = Object.keys(cmd.flags);
  return fc.oneof(
    fc.constantFrom(...flags.map((f) => `--${f}`), '--', '-h', '--help'),
    fc.tuple(fc.constantFrom(...flags), fc.string()).map(([f, v]) => `--${f}=${v}`),
    fc.constantFrom('--__proto__', '--constructor', '--toString', '--hasOwnProperty', '-x', '-', '---'),
    fc.string().map((s) => `--${s}`),
    fc.string(),
    fc.integer({ min: -5, max: 70_000 }).map(String),
  );
}

describe('reading a command line', () => {
  it('never throws: help, one usage error in one line, or the flags exactly as declared', () => {
    fc.assert(
      fc.property(
        fc
          .constantFrom(...COMMANDS)
          .chain((cmd) => fc.tuple(fc.constant(cmd), fc.array(word(cmd), { maxLength: 8 }))),
        ([cmd, argv]) => {
          const line = readCommandLine(cmd, argv);
          if ('help' in line) {
            expect(argv.some((w) => /^-.*h/.test(w))).toBe(true);
            return;
          }
          if ('error' in line) {
            expect(line.error.length).toBeGreaterThan(0);
            return;
          }
          expect(Object.keys(line.values).sort()).toEqual(Object.keys(cmd.flags).sort());
          for (const [name, flag] of Object.entries(cmd.flags)) {
            const v = line.values[name];
            if (flag.type === 'boolean') expect([undefined, true]).toContain(v);
            else if (v !== undefined) expect(typeof v === 'string' && !v.startsWith('--')).toBe(true);
          }
          expect(line.argument === undefined).toBe(cmd.argument === undefined);
        },
      ),
      { numRuns: 500 },
    );
  });

  it('names a flag that is not the command own, even one every object has', () => {
    for (const name of ['__proto__', 'constructor', 'toString'])
      expect(readCommandLine(ECHO, [`--${name}`])).toEqual({ error: `unknown flag --${name}` });
  });
});

const stats = fc
  .tuple(fc.nat(), fc.nat(), fc.nat(), fc.nat())
  .map(
    ([loanedPages, loanBreaks, cowFaults, orphansFreed]) =>
      ({ loanedPages, loanBreaks, cowFaults, orphansFreed }) as KernelStats,
  );

describe('report tables', () => {
  it('pnpm cow: every number ends where its heading ends, whatever its digits', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.tuple(
            fc.string({ maxLength: 24 }).filter((s) => !s.includes('\n')),
            stats,
          ),
          { minLength: 1, maxLength: 4 },
        ),
        (rows) => {
          const [head, ...lines] = cowTable(rows);
          const ends = ['loaned pages', 'loan breaks', 'cow faults', 'orphans freed'].map(
            (h) => head.lastIndexOf(h) + h.length,
          );
          for (const [i, line] of lines.entries()) {
            expect(line.length).toBe(head.length);
            const s = rows[i][1];
            const want = [s.loanedPages, s.loanBreaks, s.cowFaults, s.orphansFreed];
            for (const [c, end] of ends.entries()) {
              expect(line.slice(0, end).endsWith(String(want[c]))).toBe(true);
              expect(line[end] === undefined || line[end] === ' ').toBe(true);
            }
          }
        },
      ),
      { numRuns: 300 },
    );
  });

  it('traffic: the byte counts end in one column, after labels of any length', () => {
    const row = fc.record({
      direction: fc.constantFrom('received', 'sent') as fc.Arbitrary<Traffic['direction']>,
      how: fc.constantFrom('by copy', 'by loan', 'by page transfer'),
      bytes: fc.nat(),
      chains: fc.option(fc.nat(), { nil: undefined }),
    });
    fc.assert(
      fc.property(fc.array(row, { minLength: 1, maxLength: 5 }), (rows) => {
        const lines = trafficLines(rows);
        const column = new Set(lines.map((l) => l.indexOf(' bytes')));
        expect(column.size).toBe(1);
        for (const [i, l] of lines.entries()) expect(l).toContain(`${rows[i].direction} ${rows[i].how}`);
      }),
      { numRuns: 300 },
    );
  });
});
