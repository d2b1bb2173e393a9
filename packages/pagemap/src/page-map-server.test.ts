/*
 * The page map server streams what the kernel's frames are doing: loaned frames while loans last,
 * none after, counters equal to kernel.stats() and mbufStats(), the trace, the frames that came in by
 * page transfer, and a walkthrough's steps in the same message as the frames they describe; it says
 * goodbye when it closes, serves its icon, answers only loopback names, and lets the page (and only
 * the page) pause, resume and step a walkthrough. (What the browser makes of it is
 * page-map.browser.test.ts.)
 */
import http from 'node:http';
import {
  FrameState,
  Kernel,
  PAGE_SIZE,
  uvmLoan,
  uvmPageTransfer,
  uvmPglistAlloc,
  uvmPglistFree,
  uvmUnloanPages,
} from '@loanout/core';
import { mbufCopyin, mbufLoan, mbufStats, mFreem } from '@loanout/mbuf';
import { describe, expect, it } from 'vitest';
import { startPageMap } from './page-map-server.js';

interface Update {
  now: number;
  states: string;
  arrived: string;
  stats: Record<string, number>;
  mbuf: Record<string, unknown>;
  trace: { kind: string; frame: number; time: number; detail?: string }[];
  dropped: number;
  kinds: Record<string, number>;
  narration: {
    step: number;
    of: number | null;
    title: string;
    text: string;
    state: string;
    remainingMs: number | null;
  } | null;
}

interface Legend {
  title: string;
  about: string;
  frames: number;
  intervalMs: number;
  states: string[];
  clock: { startedAt: number; startedWall: number };
}

interface Message {
  event: string;
  data: unknown;
}

/*
 * watch: open the event stream as a browser would, and collect its messages; `until` waits (bounded)
 * for a message that satisfies `pred` among those not yet taken, and returns it
 */
function watch(url: string) {
  const messages: Message[] = [];
  let taken = 0;
  let ended = false;
  const req = http.get(`${url}events`, (res) => {
    let buf = '';
    res.setEncoding('utf8');
    res.on('data', (chunk: string) => {
      buf += chunk;
      for (let i = buf.indexOf('\n\n'); i >= 0; i = buf.indexOf('\n\n')) {
        const msg = buf.slice(0, i);
        buf = buf.slice(i + 2);
        const event = /^event: (.*)$/m.exec(msg)?.[1] ?? 'message';
        const data = /^data: (.*)$/m.exec(msg)?.[1] ?? 'null';
        messages.push({ event, data: JSON.parse(data) });
      }
    });
    res.on('end', () => {
      ended = true;
    });
  });
  req.on('error', () => {});
  return {
    messages,
    ended: () => ended,
    async until<T>(pred: (m: Message) => boolean, ms = 10_000): Promise<T> {
      for (const end = Date.now() + ms; Date.now() < end; await sleep(5)) {
        for (; taken < messages.length; taken++)
          if (pred(messages[taken])) return messages[taken++].data as T;
      }
      throw new Error(`no such message in ${ms} ms: ${JSON.stringify(messages.slice(-3))}`);
    },
    update(pred: (u: Update) => boolean = () => true, ms?: number): Promise<Update> {
      return this.until<Update>((m) => m.event === 'message' && pred(m.data as Update), ms);
    },
    close: () => req.destroy(),
  };
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

function countState(b64: string, code: number): number {
  return [...Buffer.from(b64, 'base64')].filter((s) => s === code).length;
}

/* marked: the frames an update's `arrived` bitmap marks */
function marked(u: Update): number[] {
  const bits = Buffer.from(u.arrived, 'base64');
  const out: number[] = [];
  for (let f = 0; f < bits.length * 8; f++) if (bits[f >> 3] & (1 << (f & 7))) out.push(f);
  return out;
}

async function get(url: string): Promise<{ status: number; type: string; body: string }> {
  const res = await fetch(url);
  return { status: res.status, type: res.headers.get('content-type') ?? '', body: await res.text() };
}

/* request: a raw HTTP request, any method, headers and body (fetch would set Origin and Host itself) */
function request(
  url: string,
  method: string,
  headers: Record<string, string>,
  body = '',
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, headers }, (res) => {
      let text = '';
      res.setEncoding('utf8').on('data', (d: string) => {
        text += d;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

/* control: what the page sends for a walkthrough action */
function control(url: string, body: unknown, headers: Record<string, string> = {}) {
  const origin = url.replace(/\/$/, '');
  return request(
    `${url}control`,
    'POST',
    { 'content-type': 'application/json', origin, ...headers },
    typeof body === 'string' ? body : JSON.stringify(body),
  );
}

describe('the live page map', () => {
  it('streams loaned frames while a loan lasts, counters equal to kernel.stats(), and the trace', async () => {
    const k = new Kernel({ physPages: 256 });
    const map = await startPageMap(k, { intervalMs: 30 });
    expect(map.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/$/);
    const p = k.createProcess();
    const va = p.mmap(8 * PAGE_SIZE);
    await p.write(va, Buffer.alloc(8 * PAGE_SIZE, 1));
    const pages = await uvmLoan(p.map, va, 8 * PAGE_SIZE, 'kernel');
    const w = watch(map.url);
    const legend = await w.until<Legend>((m) => m.event === 'legend');
    expect(legend).toMatchObject({ title: 'loanout', about: '', frames: 256, intervalMs: 30 });
    expect(legend.states[FrameState.LOANED_TO_KERNEL]).toBe('loaned to kernel');
    const u = await w.update();
    expect(countState(u.states, FrameState.LOANED_TO_KERNEL)).toBe(8);
    expect(u.stats).toEqual(JSON.parse(JSON.stringify(k.stats())));
    uvmUnloanPages(pages);
    const after = await w.update((x) => x.stats.unloans === 8);
    expect(countState(after.states, FrameState.LOANED_TO_KERNEL)).toBe(0);
    const detail = JSON.parse((await get(`${map.url}frame/${pages[0].frame}`)).body);
    expect(detail).toMatchObject({ frame: pages[0].frame, loanCount: 0, owner: 'anon' });
    w.close();
    await map.close();
    p.exit();
    k.checkInvariants();
  });

  it('sends its legend and a first update at once, not an interval later, and times from its own start', async () => {
    const k = new Kernel({ physPages: 64 });
    const before = Date.now();
    const map = await startPageMap(k, { intervalMs: 600_000, title: 't', about: 'what runs' });
    const w = watch(map.url);
    const legend = await w.until<Legend>((m) => m.event === 'legend');
    expect(legend).toMatchObject({ title: 't', about: 'what runs', intervalMs: 600_000 });
    expect(legend.clock.startedWall).toBeGreaterThanOrEqual(before);
    expect(legend.clock.startedWall).toBeLessThanOrEqual(Date.now());
    const first = await w.update(() => true, 5000);
    expect(countState(first.states, FrameState.FREE)).toBe(64);
    expect(first.trace).toEqual([]);
    expect(first.narration).toBeNull();
    expect(first.now).toBeGreaterThanOrEqual(legend.clock.startedAt);
    w.close();
    await map.close();
  });

  it('streams the bytes loaned and copied to the network (mbufStats), and a title', async () => {
    const k = new Kernel({ physPages: 256 });
    const map = await startPageMap(k, { intervalMs: 30, title: 'pnpm cow' });
    const w = watch(map.url);
    expect((await w.until<Legend>((m) => m.event === 'legend')).title).toBe('pnpm cow');
    expect((await w.update()).mbuf).toMatchObject({ loanedBytes: 0, copiedBytes: 0 });
    const p = k.createProcess();
    const va = p.mmap(4 * PAGE_SIZE);
    await p.write(va, Buffer.alloc(4 * PAGE_SIZE, 7));
    const loaned = await mbufLoan(p, va, 3 * PAGE_SIZE);
    const copied = await mbufCopyin(p, va, 1000);
    const u = await w.update((x) => x.stats.loansAnon === 3);
    expect(u.mbuf).toEqual(JSON.parse(JSON.stringify(mbufStats(k))));
    expect(u.mbuf).toMatchObject({
      loanedBytes: 3 * PAGE_SIZE,
      copiedBytes: 1000,
      loanChains: 1,
      copyChains: 1,
    });
    expect(countState(u.states, FrameState.LOANED_TO_KERNEL)).toBe(3);
    mFreem(loaned);
    mFreem(copied);
    w.close();
    await map.close();
    p.exit();
    k.checkInvariants();
  });

  it('marks the frames that came into a process by page transfer while they can be those pages, and counts transfers', async () => {
    const k = new Kernel({ physPages: 128 });
    const map = await startPageMap(k, { intervalMs: 30 });
    const w = watch(map.url);
    await w.update();
    const p = k.createProcess();
    const va = p.mmap(4 * PAGE_SIZE);
    const area = uvmPglistAlloc(k.uvm, 4)!;
    const frames = area.map((pg) => pg.frame);
    const inKernel = await w.update((u) => countState(u.states, FrameState.KERNEL) === 4);
    expect(marked(inKernel)).toEqual([]);
    uvmPageTransfer(p.map, va, area);
    const moved = await w.update((u) => u.stats.pagesTransferred === 4);
    expect(marked(moved)).toEqual(frames);
    expect(countState(moved.states, FrameState.ANON)).toBe(4);
    expect(moved.kinds).toEqual({ transfer: 4 });
    expect(moved.trace.map((t) => [t.kind, t.frame])).toEqual(frames.map((f) => ['transfer', f]));
    expect(moved.trace[0].detail).toBe(`0x${va.toString(16)}`);
    /* freed and taken again as kernel memory (a new receive area) before the next update: no longer marked */
    p.munmap(va, 4 * PAGE_SIZE);
    const again = uvmPglistAlloc(k.uvm, 4)!;
    expect(again.map((pg) => pg.frame)).toEqual(frames);
    const reused = await w.update((u) => u.stats.pglistAllocs === 2);
    expect(countState(reused.states, FrameState.KERNEL)).toBe(4);
    expect(marked(reused)).toEqual([]);
    uvmPglistFree(again);
    await w.update((u) => countState(u.states, FrameState.FREE) === 128);
    w.close();
    await map.close();
    p.exit();
    k.checkInvariants();
  });

  it('counts the trace events it had to drop when there are too many between two updates', async () => {
    const k = new Kernel({ physPages: 1024 });
    const map = await startPageMap(k, { intervalMs: 200 });
    const p = k.createProcess();
    const va = p.mmap(600 * PAGE_SIZE);
    await p.write(va, Buffer.alloc(600 * PAGE_SIZE, 1));
    const w = watch(map.url);
    await w.update();
    uvmUnloanPages(await uvmLoan(p.map, va, 600 * PAGE_SIZE, 'kernel'));
    /* 1200 events (600 loans, 600 unloans) in one or two updates: each lists at most 512, counts the rest */
    const updates: Update[] = [];
    let seen = 0;
    while (seen < 1200) {
      const u = await w.update();
      updates.push(u);
      seen += u.trace.length + u.dropped;
    }
    expect(seen).toBe(1200);
    const kinds = updates.reduce((n, u) => n + (u.kinds.loan ?? 0) + (u.kinds.unloan ?? 0), 0);
    expect(kinds).toBe(1200);
    for (const u of updates) expect(u.trace.length).toBeLessThanOrEqual(512);
    expect(updates.flatMap((u) => u.trace).at(-1)).toMatchObject({ kind: 'unloan' });
    w.close();
    await map.close();
    p.exit();
    k.checkInvariants();
    expect(k.stats().freePages).toBe(k.stats().physPages);
  });

  it('reports every trace event once, across updates', async () => {
    const k = new Kernel({ physPages: 64 });
    const map = await startPageMap(k, { intervalMs: 30 });
    const p = k.createProcess();
    const va = p.mmap(2 * PAGE_SIZE);
    await p.write(va, Buffer.alloc(2 * PAGE_SIZE, 1));
    const w = watch(map.url);
    await w.update();
    uvmUnloanPages(await uvmLoan(p.map, va, 2 * PAGE_SIZE, 'kernel'));
    await w.update((u) => u.stats.unloans === 2);
    await w.update();
    const kinds = w.messages
      .flatMap((m) => (m.event === 'message' ? (m.data as Update).trace : []))
      .map((t) => t.kind);
    expect(kinds.filter((x) => x === 'loan')).toHaveLength(2);
    expect(kinds.filter((x) => x === 'unloan')).toHaveLength(2);
    w.close();
    await map.close();
    p.exit();
    k.checkInvariants();
    expect(k.stats().freePages).toBe(k.stats().physPages);
  });

  it('says goodbye to every stream when it closes, then ends them', async () => {
    const k = new Kernel({ physPages: 16 });
    const map = await startPageMap(k, { intervalMs: 30 });
    const a = watch(map.url);
    const b = watch(map.url);
    await a.update();
    await b.update();
    expect(map.viewers()).toBe(2);
    await map.close();
    for (const w of [a, b]) {
      await w.until((m) => m.event === 'bye');
      for (let i = 0; i < 200 && !w.ended(); i++) await sleep(10);
      expect(w.ended()).toBe(true);
    }
    expect(k.uvm.tracers).toHaveLength(0);
  });

  it('serves its page, script and icon from itself (no CDN), and refuses what it does not serve', async () => {
    const k = new Kernel({ physPages: 16 });
    const map = await startPageMap(k);
    const page = await get(map.url);
    expect(page.status).toBe(200);
    expect(page.type).toMatch(/text\/html/);
    expect(page.body).toContain('<script src="/app.js">');
    expect(page.body).toContain('<link rel="icon" href="/favicon.svg"');
    expect(page.body).not.toMatch(/https?:\/\//);
    const app = await get(`${map.url}app.js`);
    expect(app.status).toBe(200);
    expect(app.body).not.toMatch(/https?:\/\//);
    for (const icon of ['favicon.svg', 'favicon.ico']) {
      const res = await get(`${map.url}${icon}`);
      expect(res.status).toBe(200);
      expect(res.type).toBe('image/svg+xml');
      expect(res.body).toMatch(/^<svg /);
    }
    expect((await get(`${map.url}frame/16`)).status).toBe(404);
    expect((await get(`${map.url}nope`)).status).toBe(404);
    expect((await request(map.url, 'DELETE', {})).status).toBe(405);
    await map.close();
  });

  it('answers only requests addressed to 127.0.0.1 or localhost (any port), not to another name', async () => {
    const k = new Kernel({ physPages: 16 });
    const map = await startPageMap(k);
    const port = new URL(map.url).port;
    for (const host of [`127.0.0.1:${port}`, `localhost:${port}`, 'localhost:8080', '127.0.0.1'])
      expect((await request(map.url, 'GET', { host })).status).toBe(200);
    for (const host of [`evil.example:${port}`, `127.0.0.2:${port}`, 'rebind.attacker.test', '[::1]:80'])
      for (const path of ['', 'app.js', 'events', 'frame/0', 'control'])
        expect((await request(`${map.url}${path}`, 'GET', { host })).status).toBe(403);
    expect(map.viewers()).toBe(0);
    await map.close();
  });

  it('refuses bad arguments (EINVAL) and a port in use (EADDRINUSE), leaving nothing subscribed', async () => {
    const k = new Kernel({ physPages: 16 });
    const bad: unknown[] = [
      { intervalMs: 0 },
      { intervalMs: Number.NaN },
      { intervalMs: '250' },
      { port: -1 },
      { port: 65536 },
      { port: 1.5 },
      { port: '80' },
      { title: 42 },
      { about: 42 },
      { about: 'x'.repeat(2001) },
      null,
      'options',
    ];
    for (const opts of bad)
      await expect(startPageMap(k, opts as never)).rejects.toMatchObject({ code: 'EINVAL' });
    for (const notKernel of [null, undefined, {}, { onTrace: () => () => {} }])
      await expect(startPageMap(notKernel as never)).rejects.toMatchObject({ code: 'EINVAL' });
    expect(k.uvm.tracers).toHaveLength(0);
    const a = await startPageMap(k);
    const port = Number(new URL(a.url).port);
    await expect(startPageMap(k, { port })).rejects.toMatchObject({ code: 'EADDRINUSE' });
    await a.close();
    expect(k.uvm.tracers).toHaveLength(0);
  });
});

describe('a walkthrough on the page map', () => {
  it('narrates each step at once, in the same update as the frames as they are at that step', async () => {
    const k = new Kernel({ physPages: 64 });
    const map = await startPageMap(k, { intervalMs: 600_000 });
    const w = watch(map.url);
    await w.update();
    const walk = map.walkthrough({ steps: 2 });
    const p = k.createProcess();
    const va = p.mmap(3 * PAGE_SIZE);
    await p.write(va, Buffer.alloc(3 * PAGE_SIZE, 1));
    const pages = await uvmLoan(p.map, va, 3 * PAGE_SIZE, 'kernel');
    const one = walk.step({ title: 'lent', text: 'three pages lent [red]' }, 20);
    const u1 = await w.update((u) => u.narration !== null);
    expect(u1.narration).toMatchObject({
      step: 1,
      of: 2,
      title: 'lent',
      text: 'three pages lent [red]',
      state: 'running',
    });
    expect(countState(u1.states, FrameState.LOANED_TO_KERNEL)).toBe(3);
    await one;
    uvmUnloanPages(pages);
    const two = walk.step({ title: 'back', text: 'the pages are the process’s again [blue]' }, 20);
    const u2 = await w.update((u) => u.narration?.step === 2);
    expect(countState(u2.states, FrameState.LOANED_TO_KERNEL)).toBe(0);
    expect(countState(u2.states, FrameState.ANON)).toBe(3);
    await two;
    walk.done();
    expect((await w.update((u) => u.narration?.state === 'done')).narration?.step).toBe(2);
    w.close();
    await map.close();
    p.exit();
    k.checkInvariants();
  });

  it('pause holds a step past its time; next ends it and the next step starts paused; resume lets it go on', async () => {
    const k = new Kernel({ physPages: 16 });
    const map = await startPageMap(k, { intervalMs: 30 });
    const actions: string[] = [];
    const walk = map.walkthrough({ onControl: (a, s) => actions.push(`${a} ${s}`) });
    let ended = 0;
    const one = walk.step({ title: 'one', text: 'first' }, 300).then(() => ended++);
    expect(await control(map.url, { action: 'pause', step: 1 })).toMatchObject({ status: 200 });
    expect(walk.state).toBe('paused');
    await sleep(500);
    expect(ended).toBe(0);
    const next = await control(map.url, { action: 'next', step: 1 });
    expect(next.status).toBe(200);
    await one;
    expect(ended).toBe(1);
    /* a second "next" for the step already over is stale: it must not skip the step to come */
    expect((await control(map.url, { action: 'next', step: 1 })).status).toBe(409);
    const two = walk.step({ title: 'two', text: 'second' }, 50).then(() => ended++);
    await sleep(200);
    expect(ended).toBe(1);
    expect(JSON.parse((await control(map.url, { action: 'resume', step: 2 })).body)).toMatchObject({
      narration: { step: 2, state: 'running' },
    });
    await two;
    expect(ended).toBe(2);
    expect(actions).toEqual(['pause 1', 'next 1', 'resume 2']);
    walk.done();
    expect((await control(map.url, { action: 'pause', step: 2 })).status).toBe(409);
    await map.close();
  });

  it('refuses every control that is not the page asking one of the three actions on the step it shows', async () => {
    const k = new Kernel({ physPages: 16 });
    const map = await startPageMap(k, { intervalMs: 30 });
    const origin = map.url.replace(/\/$/, '');
    /* no walkthrough yet: nothing to control */
    expect((await control(map.url, { action: 'pause', step: 1 })).status).toBe(409);
    const walk = map.walkthrough({ steps: 3 });
    const held = walk.step({ title: 'one', text: 'first' }, 600_000);
    const json = { 'content-type': 'application/json' };
    const refusals: [string, Promise<{ status: number; body: string }>, number][] = [
      ['GET', request(`${map.url}control`, 'GET', {}), 405],
      [
        'OPTIONS (a preflight)',
        request(`${map.url}control`, 'OPTIONS', { origin: 'http://evil.example' }),
        405,
      ],
      ['no Origin', request(`${map.url}control`, 'POST', json, '{"action":"next","step":1}'), 403],
      [
        'another origin',
        control(map.url, { action: 'next', step: 1 }, { origin: 'http://evil.example' }),
        403,
      ],
      ['another port', control(map.url, { action: 'next', step: 1 }, { origin: 'http://127.0.0.1:1' }), 403],
      ['a rebound name', control(map.url, { action: 'next', step: 1 }, { host: 'evil.example' }), 403],
      [
        'a form',
        control(map.url, 'action=next&step=1', { 'content-type': 'application/x-www-form-urlencoded' }),
        415,
      ],
      ['text/plain', control(map.url, { action: 'next', step: 1 }, { 'content-type': 'text/plain' }), 415],
      ['too long', control(map.url, { action: 'next', step: 1, pad: 'x'.repeat(300) }), 413],
      ['not JSON', control(map.url, '{action: next}'), 400],
      ['an array', control(map.url, ['next', 1]), 400],
      ['an unknown action', control(map.url, { action: 'exec', step: 1 }), 400],
      ['no step', control(map.url, { action: 'next' }), 400],
      ['a step that is not a number', control(map.url, { action: 'next', step: '1' }), 400],
      ['a step that is no integer', control(map.url, { action: 'next', step: 1.5 }), 400],
      ['a field too many', control(map.url, { action: 'next', step: 1, command: 'rm -rf' }), 400],
      ['a step not showing', control(map.url, { action: 'next', step: 2 }), 409],
    ];
    for (const [why, reply, status] of refusals) expect([why, (await reply).status]).toEqual([why, status]);
    expect(walk.state).toBe('running');
    expect((await control(map.url, { action: 'next', step: 1 }, { origin })).status).toBe(200);
    await held;
    walk.done();
    await map.close();
  });

  it('refuses bad steps (EINVAL), a step while one waits or a second walkthrough (EBUSY), and steps after done (ESHUTDOWN)', async () => {
    const k = new Kernel({ physPages: 16 });
    const map = await startPageMap(k, { intervalMs: 30 });
    for (const opts of [null, 'x', { steps: 0 }, { steps: 1.5 }, { steps: '3' }, { onControl: 'log' }])
      expect(() => map.walkthrough(opts as never)).toThrow(expect.objectContaining({ code: 'EINVAL' }));
    const walk = map.walkthrough();
    expect(() => map.walkthrough()).toThrow(expect.objectContaining({ code: 'EBUSY' }));
    const bad: [unknown, unknown][] = [
      [null, 10],
      [{ title: 'x' }, 10],
      [{ title: '', text: 'x' }, 10],
      [{ title: 'x', text: 'y'.repeat(2001) }, 10],
      [{ title: 'x', text: 'y' }, -1],
      [{ title: 'x', text: 'y' }, 1.5],
      [{ title: 'x', text: 'y' }, 2 ** 31],
      [{ title: 'x', text: 'y' }, '10'],
    ];
    for (const [n, ms] of bad)
      expect(() => walk.step(n as never, ms as never)).toThrow(expect.objectContaining({ code: 'EINVAL' }));
    const held = walk.step({ title: 'one', text: 'first' }, 600_000);
    expect(() => walk.step({ title: 'two', text: 'second' }, 10)).toThrow(
      expect.objectContaining({ code: 'EBUSY' }),
    );
    walk.done();
    await held;
    expect(() => walk.step({ title: 'two', text: 'second' }, 10)).toThrow(
      expect.objectContaining({ code: 'ESHUTDOWN' }),
    );
    /* once one is done, another may start */
    const again = map.walkthrough();
    const waiting = again.step({ title: 'again', text: 'a new one' }, 600_000);
    /* closing the page map lets a waiting step go */
    await map.close();
    await waiting;
    expect(() => map.walkthrough()).toThrow(expect.objectContaining({ code: 'ESHUTDOWN' }));
  });
});
