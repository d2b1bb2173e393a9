/*
 * The page map server streams what the kernel's frames are doing: loaned frames while loans last,
 * none after, counters equal to kernel.stats() and mbufStats(), and the trace. (What the browser
 * makes of it is page-map.browser.test.ts.)
 */
import http from 'node:http';
import { FrameState, Kernel, PAGE_SIZE, uvmLoan, uvmUnloanPages } from '@loanout/core';
import { mbufCopyin, mbufLoan, mbufStats, mFreem } from '@loanout/mbuf';
import { describe, expect, it } from 'vitest';
import { startPageMap } from './page-map-server.js';

interface Update {
  states: string;
  stats: Record<string, number>;
  mbuf: Record<string, number>;
  trace: { kind: string; frame: number }[];
  dropped: number;
}

/* nextUpdates: read the event stream until `n` data messages have arrived */
interface Legend {
  title: string;
  frames: number;
  states: string[];
}

function nextUpdates(url: string, n: number): Promise<{ legend: Legend; updates: Update[] }> {
  return new Promise((resolve, reject) => {
    const req = http.get(`${url}events`, (res) => {
      let buf = '';
      let legend: Legend | null = null;
      const updates: Update[] = [];
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        buf += chunk;
        for (let i = buf.indexOf('\n\n'); i >= 0; i = buf.indexOf('\n\n')) {
          const msg = buf.slice(0, i);
          buf = buf.slice(i + 2);
          const data = msg
            .split('\n')
            .find((l) => l.startsWith('data: '))!
            .slice(6);
          if (msg.startsWith('event: legend')) legend = JSON.parse(data);
          else updates.push(JSON.parse(data));
          if (updates.length === n) {
            req.destroy();
            resolve({ legend: legend!, updates });
          }
        }
      });
    });
    req.on('error', (err) => {
      if (!req.destroyed) reject(err);
    });
  });
}

function countState(b64: string, code: number): number {
  return [...Buffer.from(b64, 'base64')].filter((s) => s === code).length;
}

async function get(url: string): Promise<{ status: number; type: string; body: string }> {
  const res = await fetch(url);
  return { status: res.status, type: res.headers.get('content-type') ?? '', body: await res.text() };
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
    const during = await nextUpdates(map.url, 1);
    expect(during.legend).toMatchObject({ title: 'loanout', frames: 256 });
    expect(during.legend.states[FrameState.LOANED_TO_KERNEL]).toBe('loaned to kernel');
    const u = during.updates[0];
    expect(countState(u.states, FrameState.LOANED_TO_KERNEL)).toBe(8);
    expect(u.stats).toEqual(JSON.parse(JSON.stringify(k.stats())));
    uvmUnloanPages(pages);
    const after = (await nextUpdates(map.url, 1)).updates[0];
    expect(countState(after.states, FrameState.LOANED_TO_KERNEL)).toBe(0);
    expect(after.stats.unloans).toBe(8);
    const detail = JSON.parse((await get(`${map.url}frame/${pages[0].frame}`)).body);
    expect(detail).toMatchObject({ frame: pages[0].frame, loanCount: 0, owner: 'anon' });
    await map.close();
    p.exit();
    k.checkInvariants();
  });

  it('streams the bytes loaned and copied to the network (mbufStats), and a title', async () => {
    const k = new Kernel({ physPages: 256 });
    const map = await startPageMap(k, { intervalMs: 30, title: 'pnpm cow' });
    const first = await nextUpdates(map.url, 1);
    expect(first.legend.title).toBe('pnpm cow');
    expect(first.updates[0].mbuf).toMatchObject({ loanedBytes: 0, copiedBytes: 0 });
    const p = k.createProcess();
    const va = p.mmap(4 * PAGE_SIZE);
    await p.write(va, Buffer.alloc(4 * PAGE_SIZE, 7));
    const loaned = await mbufLoan(p, va, 3 * PAGE_SIZE);
    const copied = await mbufCopyin(p, va, 1000);
    const u = (await nextUpdates(map.url, 1)).updates[0];
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
    const reading = nextUpdates(map.url, 4);
    await new Promise((r) => setTimeout(r, 10));
    uvmUnloanPages(await uvmLoan(p.map, va, 600 * PAGE_SIZE, 'kernel'));
    const { updates } = await reading;
    /* 1200 events (600 loans, 600 unloans) in one or two updates: each lists at most 512, counts the rest */
    const listed = updates.reduce((n, u) => n + u.trace.length, 0);
    const dropped = updates.reduce((n, u) => n + u.dropped, 0);
    expect(listed + dropped).toBe(1200);
    expect(dropped).toBeGreaterThanOrEqual(1200 - 2 * 512);
    for (const u of updates) expect(u.trace.length).toBeLessThanOrEqual(512);
    expect(updates.flatMap((u) => u.trace).at(-1)).toMatchObject({ kind: 'unloan' });
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
    const reading = nextUpdates(map.url, 3);
    await new Promise((r) => setTimeout(r, 10));
    uvmUnloanPages(await uvmLoan(p.map, va, 2 * PAGE_SIZE, 'kernel'));
    const { updates } = await reading;
    const kinds = updates.flatMap((u) => u.trace.map((t) => t.kind));
    expect(kinds.filter((x) => x === 'loan')).toHaveLength(2);
    expect(kinds.filter((x) => x === 'unloan')).toHaveLength(2);
    await map.close();
    p.exit();
    k.checkInvariants();
    expect(k.stats().freePages).toBe(k.stats().physPages);
  });

  it('serves its page and script from itself (no CDN), and refuses what it does not serve', async () => {
    const k = new Kernel({ physPages: 16 });
    const map = await startPageMap(k);
    const page = await get(map.url);
    expect(page.status).toBe(200);
    expect(page.type).toMatch(/text\/html/);
    expect(page.body).toContain('<script src="/app.js">');
    expect(page.body).not.toMatch(/https?:\/\//);
    const app = await get(`${map.url}app.js`);
    expect(app.status).toBe(200);
    expect(app.body).not.toMatch(/https?:\/\//);
    expect((await get(`${map.url}frame/16`)).status).toBe(404);
    expect((await get(`${map.url}nope`)).status).toBe(404);
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
