/*
 * `pnpm demo --ui` driven from its page, as the page drives it (the event stream a browser reads, the
 * controls its buttons post): each of the tour's eight steps reaches the page with its title and the
 * terminal's words, in the same update as the frames as they are at that step; pause holds the tour
 * however long its steps, "next step" moves it one step at a time, the terminal says so, and after the
 * last step the page says the walkthrough is over. (The page itself: packages/pagemap's browser test.)
 */
import { type ChildProcess, spawn } from 'node:child_process';
import http from 'node:http';
import { fileURLToPath } from 'node:url';
import { FRAME_STATE_NAMES } from '@loanout/core';
import { afterEach, describe, expect, it } from 'vitest';
import { TOUR_TITLES, type TourStep } from './demo.js';
import { onMap } from './walkthrough.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const children: ChildProcess[] = [];

afterEach(() => {
  for (const c of children.splice(0)) if (c.exitCode === null) c.kill('SIGKILL');
});

interface Narration {
  step: number;
  of: number | null;
  title: string;
  text: string;
  state: string;
}

interface Update {
  states: string;
  narration: Narration | null;
}

/* the frames in use at each step of the tour, by state (as examples.test.ts finds them in-process) */
const AT_STEP: Record<TourStep, Record<string, number>> = {
  'a->k': { 'loaned to kernel': 4 },
  'loan broken': { 'loaned to kernel': 3, orphan: 1, anon: 1 },
  unloaned: { anon: 4 },
  'o->k': { 'loaned to kernel': 4 },
  'o->a': { 'loaned to anon (O->A)': 4 },
  'file unmapped': { orphan: 4 },
  'zero-fill': { 'zero page': 1 },
  done: {},
};

function inUse(b64: string): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const s of Buffer.from(b64, 'base64'))
    if (s !== 0) counts[FRAME_STATE_NAMES[s]] = (counts[FRAME_STATE_NAMES[s]] ?? 0) + 1;
  return counts;
}

/* demo: `pnpm demo --ui` with steps that never end by themselves; `out` collects what it prints */
function demo() {
  const child = spawn(
    process.execPath,
    [
      '--conditions=@loanout/source',
      '--import',
      'tsx',
      'examples/src/demo.ts',
      '--ui',
      '--step-ms',
      '600000',
    ],
    { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  children.push(child);
  const run = { child, out: '' };
  for (const s of [child.stdout!, child.stderr!])
    s.setEncoding('utf8').on('data', (d: string) => {
      run.out += d;
    });
  return run;
}

/* until: wait for `re` (a pattern, or text to find as it is) in what `get` returns */
async function until(get: () => string, re: RegExp | string, ms = 20_000): Promise<RegExpMatchArray> {
  const pattern = typeof re === 'string' ? new RegExp(re.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')) : re;
  for (const end = Date.now() + ms; Date.now() < end; await sleep(20)) {
    const m = get().match(pattern);
    if (m !== null) return m;
  }
  throw new Error(`no ${re} in:\n${get()}`);
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/* page: the event stream, as the page reads it; `next(pred)` waits for an update that satisfies it */
function page(url: string) {
  const updates: Update[] = [];
  const req = http.get(`${url}events`, (res) => {
    let buf = '';
    res.setEncoding('utf8').on('data', (d: string) => {
      buf += d;
      for (let i = buf.indexOf('\n\n'); i >= 0; i = buf.indexOf('\n\n')) {
        const msg = buf.slice(0, i);
        buf = buf.slice(i + 2);
        if (msg.startsWith('data: ')) updates.push(JSON.parse(msg.slice(6)));
      }
    });
  });
  req.on('error', () => {});
  return {
    async next(pred: (u: Update) => boolean): Promise<Update> {
      for (const end = Date.now() + 20_000; Date.now() < end; await sleep(10)) {
        const u = updates.find(pred);
        if (u !== undefined) return u;
      }
      throw new Error(`no such update; the last: ${JSON.stringify(updates.at(-1)?.narration)}`);
    },
    seen: (pred: (u: Update) => boolean) => updates.some(pred),
    close: () => req.destroy(),
  };
}

/* press: what a button on the page posts */
async function press(url: string, action: string, step: number): Promise<number> {
  const res = await fetch(`${url}control`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', origin: url.replace(/\/$/, '') },
    body: JSON.stringify({ action, step }),
  });
  return res.status;
}

describe('pnpm demo --ui, driven from its page', () => {
  it('shows each step with the frames as they are then; pause holds it, "next step" steps it, to the end', async () => {
    const run = demo();
    const [, url] = await until(() => run.out, /live page map: (http:\/\/127\.0\.0\.1:\d+\/)/);
    const view = page(url);
    const steps = Object.keys(TOUR_TITLES) as TourStep[];
    try {
      for (const [i, step] of steps.entries()) {
        const u = await view.next((x) => x.narration?.step === i + 1);
        expect(u.narration).toMatchObject({ of: steps.length, title: TOUR_TITLES[step] });
        /*
         * the page's words are the terminal's, and the frames beside them are the step's. The demo
         * prints a step before it narrates it, but this test may read the page's update before the
         * child's stdout: wait for the words there.
         */
        await until(() => run.out, `- ${onMap(u.narration!.text, true)}`);
        expect([step, inUse(u.states)]).toEqual([step, AT_STEP[step]]);
        if (i === 0) {
          expect(await press(url, 'pause', 1)).toBe(200);
          await until(() => run.out, /paused on the page: the walkthrough waits there/);
          await view.next((x) => x.narration?.state === 'paused');
        }
        /* paused, it holds: no step comes until the page asks for one */
        await sleep(150);
        expect(view.seen((x) => (x.narration?.step ?? 0) > i + 1)).toBe(false);
        expect(await press(url, 'next', i + 1)).toBe(200);
        /* the same "next" twice (a double click) is refused: it must not skip a step */
        expect(await press(url, 'next', i + 1)).toBe(409);
      }
      await until(() => run.out, /the page map stays up; Ctrl-C to quit/);
      expect((await view.next((x) => x.narration?.state === 'done')).narration?.step).toBe(steps.length);
      expect(run.out.match(/\(next step, asked on the page\)/g)).toHaveLength(steps.length);
      expect(run.out).toMatch(/free pages 256\/256/);
    } finally {
      view.close();
    }
    run.child.kill('SIGINT');
    const code = await new Promise<number | null>((r) =>
      run.child.exitCode !== null ? r(run.child.exitCode) : run.child.once('exit', (c) => r(c)),
    );
    expect(code).toBe(0);
  }, 60_000);
});
