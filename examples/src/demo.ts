/*
 * demo.ts: `pnpm demo` -- a tour of page loanout, one kind of loan at a time.
 *
 *   pnpm demo [--ui] [--step-ms 4000]
 *
 * A process lends the kernel its anonymous pages (A->K) and writes to one, which breaks that loan and
 * leaves the kernel holding an orphan; it maps a real file and lends its pages to the kernel (O->K)
 * and to anons (O->A), then unmaps the file while the anons still borrow them (orphans again); and it
 * lends memory it never touched, which all borrows the one zero page. With --ui each step is shown on
 * the live page map, and each step's text names the colours to look for (only then: walkthrough.ts).
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  type Anon,
  Kernel,
  PAGE_SIZE,
  type Proc,
  uvmLoan,
  uvmUnloanAnons,
  uvmUnloanPages,
  type VmPage,
} from '@loanout/core';
import { type Command, countValue, fail, isMain, parseCommand } from './cli.js';
import { MAX_STEP_MS, walkthrough } from './walkthrough.js';

export const DEMO: Command = {
  name: 'pnpm demo',
  summary:
    'A tour of page loanout, one kind of loan at a time: A->K and the write that breaks it, O->K and\n' +
    "O->A of a real file's pages, the file unmapped under its loans, zero-fill loans of the zero page.",
  flags: {
    ui: {
      type: 'boolean',
      help: 'serve the live page map, wait for a browser to open it, then show each step on it',
    },
    'step-ms': {
      type: 'string',
      value: 'MS',
      help: 'with --ui, milliseconds at each step unless paused on the page (default 4000)',
    },
  },
  notes: [
    'With --ui the page narrates each step and can pause, resume and step the tour; the page map stays',
    'up after the last step; Ctrl-C quits.',
  ],
};

export type TourStep =
  | 'a->k'
  | 'loan broken'
  | 'unloaned'
  | 'o->k'
  | 'o->a'
  | 'file unmapped'
  | 'zero-fill'
  | 'done';

export interface TourOptions {
  /* the kernel to tour (default 256 pages) */
  kernel?: Kernel;
  /* told each step and what happened (with the page map's colours in [brackets]); awaited, so a caller can pause */
  step?: (step: TourStep, what: string) => Promise<void> | void;
}

/* each step's title on the page map (with --ui), in the order they come */
export const TOUR_TITLES: Record<TourStep, string> = {
  'a->k': 'A->K: anon pages lent to the kernel',
  'loan broken': 'A write to a page on loan breaks the loan',
  unloaned: 'The kernel gives the pages back',
  'o->k': "O->K: a file's pages lent to the kernel",
  'o->a': "O->A: the file's pages lent to anons",
  'file unmapped': 'The file unmapped under its loans',
  'zero-fill': 'Zero-fill loans: one zero page for all',
  done: 'Done: every frame free again',
};

const N = 4;
const BYTES = N * PAGE_SIZE;

/*
 * runLoanTour: every kind of loan, in the kernel's memory, one step at a time
 * => returns the kernel's counters at the end; every page is free again and the invariants hold
 */
export async function runLoanTour(opts: TourOptions = {}) {
  const k = opts.kernel ?? new Kernel({ physPages: 256 });
  const step = async (s: TourStep, what: string) => {
    k.checkInvariants();
    await opts.step?.(s, what);
  };
  const dir = await mkdtemp(join(tmpdir(), 'loanout-tour-'));
  const p = k.createProcess();
  try {
    await anonToKernel(p, step);
    await objectLoans(k, p, dir, step);
    await zeroFill(p, step);
    p.exit();
    await k.idle();
    await step('done', `every loan has ended: all ${k.stats().physPages} frames are free again`);
    return k.stats();
  } finally {
    if (!p.exited) p.exit();
    await k.idle();
    await rm(dir, { recursive: true, force: true });
  }
}

type Step = (s: TourStep, what: string) => Promise<void>;

async function anonToKernel(p: Proc, step: Step): Promise<void> {
  const va = p.mmap(BYTES);
  await p.write(va, Buffer.alloc(BYTES, 'anon '));
  const pages = await uvmLoan(p.map, va, BYTES, 'kernel');
  await step(
    'a->k',
    `A->K: ${N} anon pages lent to the kernel, wired, the process's mappings made read-only [red]`,
  );
  await p.write(va, Buffer.from('a write'));
  const first = pages[0];
  await step(
    'loan broken',
    `the process wrote to page 0: the fault broke that loan and gave it a copy [blue]; frame ${first.frame}, ` +
      `still on loan, now belongs to no one: an orphan [purple]`,
  );
  uvmUnloanPages(pages);
  await step(
    'unloaned',
    `the kernel gave the pages back: the orphan was freed, the other ${N - 1} are the process's again`,
  );
  p.munmap(va, BYTES);
}

async function objectLoans(k: Kernel, p: Proc, dir: string, step: Step): Promise<void> {
  const file = join(dir, 'tour.bin');
  await writeFile(file, Buffer.alloc(BYTES, 'file '));
  const va = await p.mmapFile(file);
  const toKernel: VmPage[] = await uvmLoan(p.map, va, BYTES, 'kernel');
  await step(
    'o->k',
    `O->K: the file's ${N} pages, read in from the file, lent to the kernel as they sit in the page cache [red]`,
  );
  uvmUnloanPages(toKernel);
  const toAnons: Anon[] = await uvmLoan(p.map, va, BYTES, 'anon');
  await step(
    'o->a',
    `O->A: the same ${N} pages lent to ${toAnons.length} anons; the file still owns them [yellow]`,
  );
  p.munmap(va, BYTES);
  await k.idle();
  await step(
    'file unmapped',
    `the file's mapping is gone, and its object with it; the anons still hold the ${N} pages: orphans [purple]`,
  );
  uvmUnloanAnons(toAnons);
}

async function zeroFill(p: Proc, step: Step): Promise<void> {
  const va = p.mmap(BYTES);
  const pages = await uvmLoan(p.map, va, BYTES, 'kernel');
  const zero = pages[0];
  await step(
    'zero-fill',
    `memory never touched: the ${N} loans all borrow the one zero page, frame ${zero.frame}, loanCount ${zero.loanCount} [black]`,
  );
  uvmUnloanPages(pages);
  p.munmap(va, BYTES);
}

async function main(): Promise<void> {
  const args = parseCommand(DEMO);
  const stepMs = countValue(DEMO, args, 'step-ms', 4000, { max: MAX_STEP_MS, why: "a timer's limit" });
  const kernel = new Kernel({ physPages: 256 });
  const walk = await walkthrough(kernel, 'pnpm demo', args.values.ui === true, stepMs, {
    steps: Object.keys(TOUR_TITLES).length,
    about: 'a tour of page loanout in a 256-frame kernel, one kind of loan at a time',
  });
  const s = await runLoanTour({ kernel, step: (step, what) => walk.step(TOUR_TITLES[step], what) }).catch(
    (err: Error) => fail(err.message),
  );
  console.log(
    `\nloans ${s.loans} (O->K ${s.loansObj}, A->K ${s.loansAnon}, O->A ${s.loansOA}, zero-fill ${s.loansZero}), ` +
      `loan breaks ${s.loanBreaks}, orphans freed ${s.orphansFreed}, free pages ${s.freePages}/${s.physPages}`,
  );
  walk.finish();
}

if (isMain(import.meta.url)) await main();
