/*
 * cow.ts: `pnpm cow` -- a write after a zero-copy send breaks the loan, and the wire keeps the old bytes.
 *
 * A peer that is slow to read keeps the sent data in flight. Meanwhile the sender overwrites its
 * buffer. The loaned pages were made read-only by the loan, so the write faults; the fault handler
 * gives the writer a copy (loan break) and leaves the loaned page, unchanged, to the network. The
 * counters before and after show it; the peer's hash shows what went on the wire.
 *
 *   pnpm cow [--pages 2048] [--ui] [--step-ms 3000]
 *
 * --ui serves the live page map and, once a browser has it open, walks through the steps slowly
 * (--step-ms each), saying what to look for. Keep --pages well above what the host's socket buffers
 * hold (a few MiB): data the host has taken is unloaned at once, and leaves no loan to break.
 */
import { createHash } from 'node:crypto';
import net from 'node:net';
import { Kernel, KernelError, type KernelStats, MAX_PHYS_PAGES, PAGE_SIZE } from '@loanout/core';
import { sockConnect } from '@loanout/sockets';
import { type Command, countValue, fail, isMain, parseCommand } from './cli.js';
import { MAX_STEP_MS, walkthrough } from './walkthrough.js';

/* the most pages the demo may send: the kernel holds them three times over, in at most 1 GiB */
export const MAX_COW_PAGES = Math.floor((MAX_PHYS_PAGES - 1024) / 3);

export const COW: Command = {
  name: 'pnpm cow',
  summary:
    'Sends a buffer by page loan to a peer that is slow to read, then overwrites the buffer: each write\n' +
    'breaks a loan and gives the sender a copy, while the peer still gets the original bytes (hashes\n' +
    'and counters printed).',
  flags: {
    pages: {
      type: 'string',
      value: 'N',
      help: `pages to send, 1..${MAX_COW_PAGES} (default 2048 = 8 MiB); with far fewer, the host's socket buffers may take everything before the overwrite, and no loan is left to break`,
    },
    ui: {
      type: 'boolean',
      help: 'serve the live page map, wait for a browser to open it, then walk through the steps slowly',
    },
    'step-ms': {
      type: 'string',
      value: 'MS',
      help: 'with --ui, milliseconds at each step unless paused on the page (default 3000)',
    },
  },
  notes: [
    'With --ui the page narrates each step and can pause, resume and step the demo; the page map stays',
    'up after the last step; Ctrl-C quits.',
  ],
};

export interface CowResult {
  sentHash: string;
  receivedHash: string;
  overwrittenHash: string;
  before: KernelStats;
  afterWrite: KernelStats;
  afterDone: KernelStats;
}

/* the demo's steps, in order; `step` is awaited at each, so a caller can watch or pause */
export type CowStep = 'written' | 'sent' | 'overwritten' | 'done';

export interface CowOptions {
  /* pages to send (default 2048, 8 MiB) */
  pages?: number;
  /* the kernel to run on (default one with room for the pages three times over) */
  kernel?: Kernel;
  step?: (step: CowStep, stats: KernelStats) => Promise<void> | void;
}

/*
 * runCowDemo: send `pages` pages by loan to a peer that reads only after the sender has overwritten
 * the buffer; returns the hashes and the kernel's counters at each step.
 * => pages a positive integer (EINVAL); ENOMEM if the kernel has no room for them
 */
export async function runCowDemo(opts: CowOptions = {}): Promise<CowResult> {
  const pages = opts.pages ?? 2048;
  if (!Number.isSafeInteger(pages) || pages < 1)
    throw new KernelError('EINVAL', `cow: pages must be a positive integer, not ${String(pages)}`);
  const step = opts.step ?? (() => {});
  const len = pages * PAGE_SIZE;
  const k = opts.kernel ?? new Kernel({ physPages: 3 * pages + 1024 });
  const peer = await slowPeer();
  const p = k.createProcess();
  try {
    const va = p.mmap(len);
    const original = Buffer.alloc(len, 'original ');
    await p.write(va, original);
    const so = await sockConnect(k, { port: peer.port, sendHighWater: 2 * len });
    const out = { before: k.stats() } as CowResult;
    try {
      await step('written', out.before);
      const r = await so.send(p, va, len, { mode: 'loan' });
      await step('sent', k.stats());
      await p.write(va, Buffer.alloc(len, 'OVERWRITE'));
      out.afterWrite = k.stats();
      await step('overwritten', out.afterWrite);
      peer.resume();
      await r.done;
      out.afterDone = k.stats();
      await so.close();
    } catch (err) {
      /* reset the connection, and wait until the socket has let go of everything */
      so.destroy();
      await so.close({ linger: 0 }).catch(() => undefined);
      throw err;
    }
    out.sentHash = sha256(original);
    out.receivedHash = sha256(await peer.received);
    out.overwrittenHash = sha256(await p.read(va, len));
    await step('done', out.afterDone);
    return out;
  } finally {
    p.exit();
    peer.close();
  }
}

/* slowPeer: a loopback TCP server whose one connection reads nothing until resume() */
async function slowPeer(): Promise<{
  port: number;
  resume(): void;
  received: Promise<Buffer>;
  close(): void;
}> {
  let conn: net.Socket | null = null;
  let resumed = false;
  let settle: (b: Buffer) => void = () => {};
  const received = new Promise<Buffer>((r) => {
    settle = r;
  });
  const server = net.createServer((s) => {
    conn = s;
    const parts: Buffer[] = [];
    if (!resumed) s.pause();
    s.on('data', (d) => parts.push(d));
    s.on('end', () => settle(Buffer.concat(parts)));
    s.on('error', () => settle(Buffer.concat(parts)));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return {
    port: (server.address() as net.AddressInfo).port,
    resume: () => {
      resumed = true;
      conn?.resume();
    },
    received,
    close: () => {
      conn?.destroy();
      server.close();
    },
  };
}

function sha256(b: Uint8Array): string {
  return createHash('sha256').update(b).digest('hex').slice(0, 16);
}

/* each step's title on the page map (with --ui) */
export const COW_TITLES: Record<CowStep, string> = {
  written: 'The sender writes its buffer',
  sent: 'Sent by loan to a peer that is not reading',
  overwritten: 'The sender overwrites its buffer: the loans break',
  done: 'The peer reads everything',
};

/* cowStepText: what happened at each step, from the kernel's counters ([colours] for the page map: walkthrough.ts) */
export function cowStepText(step: CowStep, s: KernelStats, before: KernelStats): string {
  switch (step) {
    case 'written':
      return `the sender has written its buffer: ${s.physPages - s.freePages} pages in use [blue: anon pages]`;
    case 'sent':
      return (
        `sent by loan to a peer that is not reading: ${s.loanedPages} pages are on loan to the kernel [red]; ` +
        'whatever the host took into its own socket buffers has been unloaned already'
      );
    case 'overwritten':
      return (
        `the sender overwrote its buffer: ${s.loanBreaks - before.loanBreaks} writes faulted and broke a loan; ` +
        `the sender has new pages [blue], the network still holds the old ones, owned by no one: ${s.orphanPages} orphans [purple]`
      );
    case 'done':
      return `the peer read everything: ${s.orphansFreed - before.orphansFreed} orphans were freed as the network let go of them`;
  }
}

const COLUMNS: [string, (s: KernelStats) => number][] = [
  ['loaned pages', (s) => s.loanedPages],
  ['loan breaks', (s) => s.loanBreaks],
  ['cow faults', (s) => s.cowFaults],
  ['orphans freed', (s) => s.orphansFreed],
];

/* cowTable: the counters at each step, one row each, every column right-aligned under its heading */
export function cowTable(rows: [string, KernelStats][]): string[] {
  const first = Math.max(...rows.map(([name]) => name.length));
  const widths = COLUMNS.map(([head, get]) =>
    Math.max(head.length, ...rows.map(([, s]) => String(get(s)).length)),
  );
  const line = (name: string, cells: string[]) =>
    [name.padEnd(first), ...cells.map((c, i) => c.padStart(widths[i]))].join('  ');
  return [
    line(
      '',
      COLUMNS.map(([head]) => head),
    ),
    ...rows.map(([name, s]) =>
      line(
        name,
        COLUMNS.map(([, get]) => String(get(s))),
      ),
    ),
  ];
}

/* what the columns count */
export const COW_LEGEND = [
  'loan breaks    writes to a page on loan: each gave the writer a copy of the page and left the',
  '               original, unchanged, to the network -- owned by no one (an orphan) until it is sent',
  'cow faults     copy-on-write faults proper: writes to memory shared after a fork, or to a private',
  '               mapping of a file; none here, since the buffer was lent, never shared',
  'orphans freed  orphans freed when the network let go of them, their bytes sent',
];

async function main(): Promise<void> {
  const args = parseCommand(COW);
  const pages = countValue(COW, args, 'pages', 2048, {
    max: MAX_COW_PAGES,
    why: 'the kernel holds them three times over, in at most 1 GiB',
  });
  const stepMs = countValue(COW, args, 'step-ms', 3000, { max: MAX_STEP_MS, why: "a timer's limit" });
  const ui = args.values.ui === true;
  const kernel = new Kernel({ physPages: 3 * pages + 1024 });
  const walk = await walkthrough(kernel, 'pnpm cow', ui, stepMs, {
    steps: Object.keys(COW_TITLES).length,
    about: `${pages} pages sent by loan to a peer that is slow to read, then overwritten by the sender`,
  });
  let before: KernelStats | null = null;
  const step = (name: CowStep, stats: KernelStats) => {
    before ??= stats;
    return walk.step(COW_TITLES[name], cowStepText(name, stats, before));
  };
  const r = await runCowDemo({ pages, kernel, step }).catch((err: Error) => fail(err.message));
  console.log(
    `\n${cowTable([
      ['before send', r.before],
      ['after the overwrite', r.afterWrite],
      ['after done', r.afterDone],
    ]).join('\n')}`,
  );
  console.log(`\n${COW_LEGEND.join('\n')}`);
  console.log(`\nhash of the bytes sent:        ${r.sentHash}`);
  console.log(
    `hash of what the peer got:     ${r.receivedHash}  ${r.receivedHash === r.sentHash ? '(the original: the wire kept the old bytes)' : '(DIFFERENT!)'}`,
  );
  console.log(`hash of the sender's buffer:   ${r.overwrittenHash}  (the new bytes, in fresh pages)`);
  walk.finish();
}

if (isMain(import.meta.url)) await main();
