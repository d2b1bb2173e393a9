/*
 * Several "threads" issue random VM calls at once on a handful of processes in a tiny kernel: every
 * await of one call is a chance for the others to change the world under it. Bytes can't be predicted
 * here, but the books can: every call succeeds or fails with an expected KernelError, checkInvariants()
 * holds after every call of every thread, and when all is done every page and swap slot comes back.
 * The second property wires all but one to three frames first (kernel memory, as loans and receive
 * areas wire it): then ENOMEM is an honest answer, but every call must end -- a fault that cannot
 * make progress gives up, it never livelocks (an attacker's random test found two that did).
 */
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  Kernel,
  KernelError,
  PAGE_SIZE,
  type Proc,
  Prot,
  uvmKmAllocPage,
  uvmKmFreePage,
  type VmPage,
} from '../src/index.js';
import { makeTmpDir, pattern, removeTmpDir, writeFileOf } from './helpers.js';

const RW = Prot.READ | Prot.WRITE;
const MAX_PROCS = 5;

type Call = [kind: number, a: number, b: number];

let dir: string;
let file: string;

beforeAll(async () => {
  dir = await makeTmpDir();
  file = await writeFileOf(dir, 'shared.bin', 8 * PAGE_SIZE, 1);
});

afterAll(async () => {
  await removeTmpDir(dir);
});

interface World {
  k: Kernel;
  procs: Proc[];
  regions: Map<Proc, number[]>;
}

/* one call; returns the KernelError code it failed with, or 'ok' */
async function call(w: World, [kind, a, b]: Call): Promise<string> {
  const alive = w.procs.filter((p) => !p.exited);
  if (alive.length === 0) return 'none';
  const p = alive[a % alive.length];
  const rs = w.regions.get(p) ?? [];
  const r = rs.length > 0 ? rs[b % rs.length] : 0x10000;
  try {
    switch (kind) {
      case 0:
        w.regions.set(p, [...rs, p.mmap(((b % 8) + 1) * PAGE_SIZE, { shared: a % 3 === 0 })]);
        break;
      case 1:
        w.regions.set(p, [...rs, await p.mmapFile(file, { prot: RW, shared: a % 2 === 0 })]);
        break;
      case 2:
        await p.write(r + (a % 8) * PAGE_SIZE + 7, pattern(b * 50 + 1, a));
        break;
      case 3:
        await p.read(r + (a % 8) * PAGE_SIZE, b * 300 + 1);
        break;
      case 4:
        p.munmap(r + (a % 4) * PAGE_SIZE, ((b % 3) + 1) * PAGE_SIZE);
        break;
      case 5:
        p.mprotect(r, PAGE_SIZE, [Prot.NONE, Prot.READ, RW, Prot.ALL][b % 4]);
        break;
      case 6:
        if (alive.length < MAX_PROCS) {
          const c = p.fork();
          w.procs.push(c);
          w.regions.set(c, [...rs]);
        }
        break;
      case 7:
        if (a % 4 === 0) p.exit();
        break;
      case 8:
        await w.k.sync();
        break;
      default:
        await p.write(r, pattern(2 * PAGE_SIZE, b));
        break;
    }
    return 'ok';
  } catch (err) {
    if (!(err instanceof KernelError)) throw err;
    return err.code;
  }
}

describe('random concurrent VM operations keep the books', () => {
  it('on several processes at once, under memory pressure', async () => {
    const callArb = fc.tuple(fc.nat(9), fc.nat(1000), fc.nat(20));
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 12, max: 32 }),
        fc.array(fc.array(callArb, { minLength: 5, maxLength: 40 }), { minLength: 2, maxLength: 5 }),
        fc.boolean(),
        async (physPages, threads, slowIo) => {
          const k = new Kernel({ physPages, swapPages: 256 });
          if (slowIo) k.setIoHook(() => new Promise<void>((r) => setImmediate(r)));
          const w: World = { k, procs: [k.createProcess()], regions: new Map() };
          await Promise.all(
            threads.map(async (calls) => {
              for (const c of calls) {
                const res = await call(w, c);
                /* ENOMEM only from mprotect of a hole: with this much swap, memory never runs out */
                const allowed =
                  c[0] === 5
                    ? ['ok', 'none', 'EFAULT', 'ENOMEM', 'ESRCH']
                    : ['ok', 'none', 'EFAULT', 'ESRCH'];
                expect(allowed).toContain(res);
                k.checkInvariants();
              }
            }),
          );
          for (const p of w.procs) if (!p.exited) p.exit();
          await k.idle();
          k.checkInvariants();
          expect(k.stats()).toMatchObject({ freePages: physPages, swapUsed: 0, anons: 0, busyPages: 0 });
          expect(k.uvm.vnodes.size).toBe(0);
          expect(k.uvm.backgroundErrors).toEqual([]);
        },
      ),
      { numRuns: 150 },
    );
  });

  it('with all but a few frames wired, every call ends (ENOMEM allowed, never a livelock)', async () => {
    const callArb = fc.tuple(fc.nat(9), fc.nat(1000), fc.nat(20));
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 3 }),
        fc.array(fc.array(callArb, { minLength: 5, maxLength: 30 }), { minLength: 2, maxLength: 4 }),
        async (spare, threads) => {
          const physPages = 24;
          const k = new Kernel({ physPages, swapPages: 256 });
          const w: World = { k, procs: [k.createProcess()], regions: new Map() };
          /* give the process some memory to page, then wire all but `spare` frames */
          const va = w.procs[0].mmap(8 * PAGE_SIZE);
          w.regions.set(w.procs[0], [va]);
          await w.procs[0].write(va, pattern(8 * PAGE_SIZE, 3));
          const held: VmPage[] = [];
          while (physPages - k.stats().wiredPages > spare) held.push(await uvmKmAllocPage(k.uvm));
          const run = Promise.all(
            threads.map(async (calls) => {
              for (const c of calls) {
                expect(['ok', 'none', 'EFAULT', 'ESRCH', 'ENOMEM']).toContain(await call(w, c));
                k.checkInvariants();
              }
            }),
          );
          /* a livelock keeps the event loop busy but never settles: a timer still fires */
          let timer: NodeJS.Timeout | undefined;
          const outcome = await Promise.race([
            run.then(() => 'ended'),
            new Promise<string>((r) => {
              timer = setTimeout(() => r('still running after 10 s: a livelock'), 10_000);
            }),
          ]);
          clearTimeout(timer);
          for (const pg of held) uvmKmFreePage(pg);
          await run;
          expect(outcome).toBe('ended');
          for (const p of w.procs) if (!p.exited) p.exit();
          await k.idle();
          k.checkInvariants();
          expect(k.stats()).toMatchObject({ freePages: physPages, swapUsed: 0, anons: 0, busyPages: 0 });
          expect(k.uvm.backgroundErrors).toEqual([]);
        },
      ),
      { numRuns: 60 },
    );
  }, 120_000);
});
