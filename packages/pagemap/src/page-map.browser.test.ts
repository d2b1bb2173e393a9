/// <reference lib="dom" />
/*
 * End to end, in a real headless Chromium (Debian's, driven by playwright-core; no browser is ever
 * downloaded), as a student would see the page:
 *
 *   - its states: connecting (before the first update: never blank), live, paused (a walkthrough held
 *     from the page), disconnected (the server gone: greyed, retrying) and back to live on reconnect;
 *   - a walkthrough narrated on the page in step with the kernel, driven by the page's buttons;
 *   - the focus view: the loaned frames of a 32768-frame kernel drawn at 8 px or more, in the window;
 *   - an echo in flight: loaned frames during the transfer, none after, the kernel's own counters; and
 *     a zero-copy echo: pages come in by transfer (marked) and go out on loan;
 *   - the frame panel in words, with NetBSD's names beside them, steady in size;
 *   - the layout at 420, 900 and 1400 px (no horizontal scroll, the map within the window), and the
 *     icon (no request fails).
 *
 * Skipped, saying so, only where /usr/bin/chromium is not installed (.ci/run installs it).
 */
import { existsSync } from 'node:fs';
import net from 'node:net';
import { Kernel, PAGE_SIZE, uvmLoan, uvmPglistAlloc, uvmPglistFree, uvmUnloanPages } from '@loanout/core';
import { mbufStats } from '@loanout/mbuf';
import { createEchoServer, type EchoMode } from '@loanout/sockets';
import { type Browser, chromium, type Page, type Route } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type PageMap, startPageMap } from './page-map-server.js';

const CHROMIUM = '/usr/bin/chromium';
const haveChromium = existsSync(CHROMIUM);
if (!haveChromium)
  console.warn(`page map browser test skipped: ${CHROMIUM} is not installed (apt-get install chromium)`);

let browser: Browser | null = null;
beforeAll(async () => {
  if (!haveChromium) return;
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}, 60_000);
afterAll(async () => {
  await browser?.close();
});

/* what app.js offers scripts: where a frame's cell is on the screen now */
interface Hook {
  pageMap: {
    cellRect(frame: number): { x: number; y: number; width: number; height: number } | null;
    marked(): number[];
  };
}

/* open: a page of the given size on the map, once its first update has arrived */
async function open(map: PageMap, width = 1400, height = 900): Promise<Page> {
  const page = await browser!.newPage({ viewport: { width, height } });
  await page.goto(map.url);
  await page.waitForFunction(() => Number(document.body.dataset.updates ?? 0) > 0);
  return page;
}

function state(page: Page): Promise<string | undefined> {
  return page.evaluate(() => document.body.dataset.state);
}

/* legendCounts: the count the legend shows for each frame state, by state code */
function legendCounts(page: Page): Promise<number[]> {
  return page.$$eval('#legend span[data-state]', (spans) =>
    spans.map((s) => Number(s.querySelector('b')!.textContent)),
  );
}

function kernelCounts(k: Kernel): number[] {
  const counts = new Array(9).fill(0);
  for (const s of k.frameStates()) counts[s]++;
  return counts;
}

/*
 * cellOnScreen: where frame `f` is drawn, and the colour of the canvas pixel at its cell's centre --
 * what the student sees there
 */
async function cellOnScreen(page: Page, f: number) {
  return page.evaluate(
    ({ frame }) => {
      const rect = (window as unknown as Hook).pageMap.cellRect(frame);
      if (rect === null) return null;
      const canvas = document.getElementById('focus') as HTMLCanvasElement;
      const box = canvas.getBoundingClientRect();
      const dpr = canvas.width / box.width;
      const x = Math.floor((rect.x - box.left + rect.width / 2) * dpr);
      const y = Math.floor((rect.y - box.top + rect.height / 2) * dpr);
      const px = canvas.getContext('2d')!.getImageData(x, y, 1, 1).data;
      return {
        ...rect,
        rgb: [px[0], px[1], px[2]],
        inWindow: rect.x >= 0 && rect.x + rect.width <= innerWidth,
      };
    },
    { frame: f },
  );
}

const RED = [232, 69, 60];

describe.skipIf(!haveChromium)('the live page map in a browser', () => {
  it('says it is connecting until the first update (never blank), then live', async () => {
    const k = new Kernel({ physPages: 1024 });
    const map = await startPageMap(k, { intervalMs: 50, title: 'states' });
    const page = await browser!.newPage({ viewport: { width: 900, height: 800 } });
    let held: Route | null = null;
    await page.route('**/events', (route) => {
      held = route;
    });
    try {
      await page.goto(map.url);
      await page.waitForFunction(() => document.readyState === 'complete');
      for (let i = 0; i < 200 && held === null; i++) await new Promise((r) => setTimeout(r, 10));
      expect(held).not.toBeNull();
      expect(await state(page)).toBe('connecting');
      expect(await page.textContent('#status')).toBe('connecting');
      /* the map's place says what it waits for, in a box of its own size */
      const waiting = await page.$eval('#placeholder', (el) => ({
        text: el.textContent,
        shown: !(el as HTMLElement).hidden,
        height: el.getBoundingClientRect().height,
      }));
      expect(waiting).toMatchObject({ text: expect.stringMatching(/connecting/), shown: true });
      expect(waiting.height).toBeGreaterThan(100);
      await held!.continue();
      await page.unroute('**/events');
      await page.waitForFunction(() => document.body.dataset.state === 'live');
      expect(await page.textContent('#status')).toBe('live');
      expect(await page.$eval('#placeholder', (el) => (el as HTMLElement).hidden)).toBe(true);
      expect(await page.$eval('#focusbox', (el) => (el as HTMLElement).hidden)).toBe(false);
    } finally {
      await page.close();
      await map.close();
    }
  }, 60_000);

  it('shows a stopped server as disconnected (greyed, retrying, never "live"), and goes live again when it is back', async () => {
    const k = new Kernel({ physPages: 256 });
    let map = await startPageMap(k, { intervalMs: 50, title: 'reconnect' });
    const port = Number(new URL(map.url).port);
    const page = await open(map, 900, 800);
    try {
      expect(await state(page)).toBe('live');
      await map.close();
      await page.waitForFunction(() => document.body.dataset.state === 'disconnected');
      expect(await page.textContent('#status')).toBe('disconnected');
      expect(await page.textContent('#status-detail')).toMatch(
        /server stopped; reconnecting in [01] s \(attempt 1\)/,
      );
      expect(await page.evaluate(() => document.body.dataset.retry)).toBe('1:1000');
      expect(await page.$eval('body', (b) => b.classList.contains('stale'))).toBe(true);
      expect(await page.textContent('#stale-note')).toMatch(/Not live/);
      expect(await page.title()).toBe('reconnect: page map (disconnected)');
      expect(await page.$eval('#retry', (b) => (b as HTMLElement).hidden)).toBe(false);
      /* while it is gone the page keeps retrying, waiting longer each time, and says so */
      await page.waitForFunction(() => document.body.dataset.retry === '2:2000', null, { timeout: 10_000 });
      expect(await page.textContent('#status-detail')).toMatch(
        /cannot reach the page map server; reconnecting in [0-2] s \(attempt 2\)/,
      );
      map = await startPageMap(k, { intervalMs: 50, title: 'reconnect', port });
      const p = k.createProcess();
      const va = p.mmap(2 * PAGE_SIZE);
      await p.write(va, Buffer.alloc(2 * PAGE_SIZE, 1));
      await page.waitForFunction(() => document.body.dataset.state === 'live', null, { timeout: 15_000 });
      expect(await page.$eval('body', (b) => b.classList.contains('stale'))).toBe(false);
      await page.waitForFunction(
        () => document.querySelector('#legend span[data-state="1"] b')?.textContent === '2',
      );
      expect(await page.textContent('#trace')).toMatch(/reconnected at/);
      p.exit();
    } finally {
      await page.close();
      await map.close();
    }
  }, 60_000);

  it('narrates a walkthrough in step with the kernel, paused, stepped and resumed from the page', async () => {
    const k = new Kernel({ physPages: 256 });
    const map = await startPageMap(k, { intervalMs: 50, title: 'walkthrough' });
    const page = await open(map);
    const walk = map.walkthrough({ steps: 3 });
    const p = k.createProcess();
    const va = p.mmap(8 * PAGE_SIZE);
    /* the walkthrough, as an example runs it: change the kernel, then hold at a step */
    const seen: number[][] = [];
    const run = (async () => {
      await p.write(va, Buffer.alloc(8 * PAGE_SIZE, 1));
      seen.push(kernelCounts(k));
      await walk.step({ title: 'Written', text: 'eight pages written [blue]' }, 600_000);
      const pages = await uvmLoan(p.map, va, 8 * PAGE_SIZE, 'kernel');
      seen.push(kernelCounts(k));
      await walk.step({ title: 'Lent', text: 'the eight pages lent to the kernel [red: on loan]' }, 300);
      uvmUnloanPages(pages);
      p.munmap(va, 8 * PAGE_SIZE);
      seen.push(kernelCounts(k));
      await walk.step({ title: 'Gone', text: 'all free again' }, 600_000);
    })();
    try {
      for (const [i, title] of ['Written', 'Lent'].entries()) {
        await page.waitForFunction((t) => document.getElementById('step-title')!.textContent === t, title);
        expect(await page.textContent('#step-number')).toBe(`step ${i + 1} of 3`);
        /* the page shows the step's words beside the kernel as it is at that step */
        expect(await legendCounts(page)).toEqual(seen[i]);
        if (i === 0) {
          expect(await page.textContent('#step-text')).toBe('eight pages written anon');
          expect(await page.$eval('#step-text .chip i', (el) => getComputedStyle(el).backgroundColor)).toBe(
            'rgb(76, 139, 245)',
          );
          await page.click('#step-pause');
          await page.waitForFunction(() => document.body.dataset.state === 'paused');
          expect(await page.textContent('#status')).toBe('paused');
          expect(await page.isVisible('#step-resume')).toBe(true);
          expect(await page.isVisible('#step-pause')).toBe(false);
        }
        expect(walk.state).toBe('paused');
        await page.click('#step-next');
      }
      /* paused, the next step waits however short it is; resume lets it go */
      await page.waitForFunction(() => document.getElementById('step-title')!.textContent === 'Gone');
      expect(await legendCounts(page)).toEqual(seen[2]);
      expect(await legendCounts(page)).toEqual(kernelCounts(k));
      expect(await state(page)).toBe('paused');
      await page.click('#step-resume');
      await page.waitForFunction(() => document.body.dataset.state === 'live');
      expect(await page.textContent('#step-timer')).toMatch(/next step in \d+ s/);
      walk.done();
      await run;
      await page.waitForFunction(() =>
        /walkthrough is over/.test(document.getElementById('step-timer')!.textContent!),
      );
      expect(await page.$eval('#step-next', (b) => (b as HTMLButtonElement).disabled)).toBe(true);
    } finally {
      walk.done();
      await run.catch(() => undefined);
      await page.close();
      await map.close();
      if (!p.exited) p.exit();
    }
    k.checkInvariants();
  }, 60_000);

  it('focuses on the loaned frames of a 32768-frame kernel at 8 px or more, in the window, at 1400 and 420 px, and keeps them a while once let go', async () => {
    const k = new Kernel({ physPages: 32768, swapPages: 0 });
    /* push the process's pages high up in RAM, far from anything else, then free what pushed them */
    const filler = uvmPglistAlloc(k.uvm, 30000, { zero: false })!;
    const p = k.createProcess();
    const va = p.mmap(32 * PAGE_SIZE);
    await p.write(va, Buffer.alloc(32 * PAGE_SIZE, 1));
    const pages = await uvmLoan(p.map, va, 32 * PAGE_SIZE, 'kernel');
    uvmPglistFree(filler);
    expect(Math.min(...pages.map((pg) => pg.frame))).toBeGreaterThanOrEqual(30000);
    const map = await startPageMap(k, { intervalMs: 50, title: 'focus' });
    try {
      for (const [width, height] of [
        [1400, 900],
        [420, 900],
      ]) {
        const page = await open(map, width, height);
        await page.waitForFunction(() => document.body.dataset.loanedToKernel === '32');
        for (const pg of pages) {
          const cell = await cellOnScreen(page, pg.frame);
          expect(cell).not.toBeNull();
          expect(cell!.width).toBeGreaterThanOrEqual(8);
          expect(cell!.height).toBeGreaterThanOrEqual(8);
          expect(cell!.inWindow).toBe(true);
          expect(cell!.y).toBeGreaterThanOrEqual(0);
          expect(cell!.y + cell!.height).toBeLessThanOrEqual(height);
          expect(cell!.rgb).toEqual(RED);
        }
        /* the free stretch before them is folded into a line that says so */
        expect(await page.textContent('#geometry')).toMatch(/free frames folded/);
        /* all RAM is still there, one cell per frame */
        await page.click('#view-all');
        const grid = await page.$eval('#map', (c) => ({
          w: (c as HTMLCanvasElement).width,
          h: (c as HTMLCanvasElement).height,
        }));
        expect(grid.w % 256).toBe(0);
        expect(grid.h).toBe(grid.w / 2);
        await page.close();
      }
      /* the rows of frames just let go stay in the focus a while: a burst does not vanish at once */
      const page = await open(map);
      await page.waitForFunction(() => document.body.dataset.loanedToKernel === '32');
      uvmUnloanPages(pages);
      p.exit();
      await page.waitForFunction(
        () => document.querySelector('#legend span[data-state="0"] b')?.textContent === '32768',
      );
      for (const pg of pages) expect((await cellOnScreen(page, pg.frame))?.rgb).toEqual([244, 244, 244]);
      /* the mini-map takes you to a part of RAM the focus does not show: all RAM, scrolled there */
      const mini = (await page.$('#minimap'))!;
      const box = (await mini.boundingBox())!;
      await page.mouse.click(box.x + 2, box.y + box.height - 2);
      expect(await page.$eval('#view-all', (b) => b.getAttribute('aria-selected'))).toBe('true');
      expect(await page.isVisible('#map')).toBe(true);
      await page.close();
    } finally {
      await map.close();
      if (!p.exited) {
        uvmUnloanPages(pages);
        p.exit();
      }
    }
    k.checkInvariants();
  }, 60_000);

  it('shows loaned frames while an echo is in flight, none after, and the kernel counters', async () => {
    const echo = await createEchoServer({ port: 0, mode: 'loan' });
    const map = await startPageMap(echo.kernel, { intervalMs: 50 });
    const page = await open(map);
    try {
      const client = await holdEcho(echo.port);
      await page.waitForFunction(() => Number(document.body.dataset.loanedToKernel) > 0, null, {
        timeout: 20_000,
      });
      expect(await page.isVisible('#flow')).toBe(true);
      const got = await drain(client);
      expect(got).toBe(32 << 20);
      await page.waitForFunction(() => Number(document.body.dataset.loanedToKernel) === 0, null, {
        timeout: 20_000,
      });
      /* the connection's end, then its receive area's release, settle the kernel */
      for (
        let i = 0;
        i < 200 && (echo.stats().activeConnections > 0 || echo.kernel.stats().wiredPages > 0);
        i++
      )
        await new Promise((r) => setTimeout(r, 25));
      expect(echo.stats().activeConnections).toBe(0);
      const stats = echo.kernel.stats();
      const keys = ['loansAnon', 'unloans', 'loanedPages', 'wiredPages', 'physPages'] as const;
      const want = Object.fromEntries(keys.map((key) => [key, stats[key]]));
      /* the page catches up on its next update */
      await page.waitForFunction(
        (w) =>
          Object.entries(w).every(
            ([key, v]) =>
              (document.querySelector(`td[data-counter="${key}"]`) as HTMLElement | null)?.dataset.value ===
              String(v),
          ),
        want,
        { timeout: 20_000 },
      );
      const shown = await counters(page);
      for (const key of keys) expect(shown[key]).toBe(stats[key]);
      expect(stats.loansAnon).toBeGreaterThan(0);
      const sent = mbufStats(echo.kernel);
      expect(shown['mbuf.loanedBytes']).toBe(sent.loanedBytes);
      expect(shown['mbuf.copiedBytes']).toBe(sent.copiedBytes);
      expect(sent.loanedBytes).toBe(32 << 20);
    } finally {
      await page.close();
      await map.close();
      await echo.close();
    }
  }, 60_000);

  it('shows a zero-copy echo both ways: pages in by transfer (marked), out on loan, and the transfer counters', async () => {
    const echo = await createEchoServer({ port: 0, mode: 'zerocopy' satisfies EchoMode });
    const map = await startPageMap(echo.kernel, { intervalMs: 50 });
    const page = await open(map);
    try {
      const client = await holdEcho(echo.port);
      await page.waitForFunction(
        () =>
          Number(document.body.dataset.loanedToKernel) > 0 &&
          Number(document.querySelector('#legend .mark b')?.textContent ?? 0) > 0,
        null,
        { timeout: 20_000 },
      );
      expect(await page.textContent('#trace')).toMatch(
        /moved into a process at 0x[0-9a-f]+ by page transfer.*\[transfer\]/,
      );
      expect(await page.textContent('#flow-stages')).toMatch(
        /receive areas: \d+.*transfer.*came by transfer: [1-9]\d*.*loan.*on loan to the network: [1-9]/,
      );
      expect(await page.textContent('#flow-table')).toMatch(/by transfer [1-9][\d.]* [KM]iB/);
      /* a marked frame carries a white dot at its centre; the student sees it in the focus */
      const [frame] = await page.evaluate(() => (window as unknown as Hook).pageMap.marked());
      expect(frame).toBeGreaterThanOrEqual(0);
      const cell = await cellOnScreen(page, frame);
      expect(cell?.rgb).toEqual([255, 255, 255]);
      await drain(client);
      const s = echo.kernel.stats();
      expect(s.pagesTransferred).toBeGreaterThan(0);
      await page.waitForFunction(
        (n) =>
          Number(
            (document.querySelector('td[data-counter="pagesTransferred"]') as HTMLElement).dataset.value,
          ) === n,
        s.pagesTransferred,
        { timeout: 20_000 },
      );
      expect((await counters(page))['mbuf.recvTransferredBytes']).toBe(
        mbufStats(echo.kernel).recvTransferredBytes,
      );
    } finally {
      await page.close();
      await map.close();
      await echo.close();
    }
  }, 60_000);

  it('tells a frame in words, with NetBSD’s names beside them, pinned and live, in a panel that does not jump', async () => {
    const k = new Kernel({ physPages: 4096 });
    const map = await startPageMap(k, { intervalMs: 50, title: 'frame panel' });
    const page = await open(map);
    const p = k.createProcess();
    try {
      const va = p.mmap(PAGE_SIZE);
      await p.write(va, Buffer.alloc(PAGE_SIZE, 1));
      const [pg] = await uvmLoan(p.map, va, PAGE_SIZE, 'kernel');
      await page.waitForFunction(() => document.body.dataset.loanedToKernel === '1');
      const below = () => page.$eval('#counters', (el) => el.getBoundingClientRect().top);
      const panel = () => page.$eval('#frame-panel', (el) => el.getBoundingClientRect().height);
      const [top0, height0] = [await below(), await panel()];
      const rect = (await cellOnScreen(page, pg.frame))!;
      await page.mouse.click(rect.x + rect.width / 2, rect.y + rect.height / 2);
      await page.waitForFunction(
        (f) =>
          document.getElementById('frame-panel')!.dataset.frame === String(f) &&
          document.getElementById('f-owner')!.textContent !== '—',
        pg.frame,
      );
      expect(await page.textContent('#frame-id')).toBe(`${pg.frame} (pinned)`);
      const text = (await page.textContent('#frame-panel'))!;
      expect(text).not.toMatch(/[{}]|"loanCount"|null/);
      expect(await page.textContent('#f-state')).toMatch(/on loan to the kernel/);
      expect(await page.textContent('#f-owner')).toMatch(/an anon/);
      expect(await page.textContent('#f-loans')).toBe('1 loan (A->K)');
      expect(await page.textContent('#f-borrowers')).toMatch(/the kernel/);
      expect(await page.textContent('#f-wired')).toMatch(/^yes, 1 time/);
      expect(await page.textContent('#f-mappings')).toMatch(/process \d+ at 0x[0-9a-f]+ \(read-only\)/);
      for (const name of [
        'pg->loan_count',
        'pg->wire_count',
        'pg->uobject',
        'pg->pqflags & PQ_ANON',
        'PG_BUSY',
      ])
        expect(text).toContain(name);
      expect(await page.textContent('#f-events')).toMatch(/\+\d+\.\d{3} s lent to the kernel/);
      expect(await page.textContent('#trace-origin')).toMatch(
        /seconds since the page map started, at \d\d:\d\d:\d\d/,
      );
      /* the panel is as tall as it was empty, and nothing below it moved */
      expect([await below(), await panel()]).toEqual([top0, height0]);
      /* pinned, it follows the frame: after the unloan it shows the loan gone */
      uvmUnloanPages([pg]);
      await page.waitForFunction(() => document.getElementById('f-loans')!.textContent === 'not on loan');
      expect(await page.textContent('#f-wired')).toMatch(/^no/);
      await page.waitForFunction(
        () => document.querySelector('#legend span[data-state="3"] b')?.textContent === '0',
      );
    } finally {
      await page.close();
      await map.close();
      p.exit();
    }
    k.checkInvariants();
  }, 60_000);

  it('fits 420, 900 and 1400 px windows (no horizontal scroll, the map within the window), with an icon and no failed request', async () => {
    const k = new Kernel({ physPages: 32768 });
    const p = k.createProcess();
    const va = p.mmap(64 * PAGE_SIZE);
    await p.write(va, Buffer.alloc(64 * PAGE_SIZE, 1));
    const pages = await uvmLoan(p.map, va, 32 * PAGE_SIZE, 'kernel');
    const map = await startPageMap(k, {
      intervalMs: 50,
      title: 'a title long enough to wrap on a phone, as titles do',
    });
    try {
      for (const width of [420, 900, 1400]) {
        const page = await browser!.newPage({ viewport: { width, height: 850 } });
        const failed: string[] = [];
        page.on('response', (r) => {
          if (r.status() >= 400) failed.push(`${r.status()} ${r.url()}`);
        });
        page.on('requestfailed', (r) => {
          if (!r.url().endsWith('/events')) failed.push(`failed ${r.url()}`);
        });
        await page.goto(map.url);
        await page.waitForFunction(() => document.body.dataset.loanedToKernel === '32');
        const icon = await page.$eval('link[rel="icon"]', (l) => (l as HTMLLinkElement).href);
        const res = await page.request.get(icon);
        expect([res.status(), res.headers()['content-type']]).toEqual([200, 'image/svg+xml']);
        for (const tab of ['#view-focus', '#view-all']) {
          await page.click(tab);
          const fit = await page.evaluate(() => {
            const box = (document.querySelector('#focusbox:not([hidden])') ??
              document.getElementById('gridbox'))!;
            const r = box.getBoundingClientRect();
            return {
              scroll: document.documentElement.scrollWidth,
              inner: innerWidth,
              left: r.left,
              right: r.right,
              width: r.width,
            };
          });
          expect(fit.scroll).toBeLessThanOrEqual(fit.inner);
          expect(fit.left).toBeGreaterThanOrEqual(0);
          expect(fit.right).toBeLessThanOrEqual(fit.inner);
          expect(fit.width).toBeGreaterThan(fit.inner / 3);
        }
        await page.close();
        expect(failed).toEqual([]);
      }
    } finally {
      await map.close();
      uvmUnloanPages(pages);
      p.exit();
    }
  }, 60_000);
});

/* holdEcho: a client that sends 32 MiB and reads nothing yet: once the host's socket buffers are full,
   the server's sends stay in flight */
async function holdEcho(port: number): Promise<net.Socket> {
  const client = net.connect(port, '127.0.0.1');
  client.pause();
  await new Promise<void>((r) => client.once('connect', () => r()));
  client.end(Buffer.alloc(32 << 20, 0x5a));
  return client;
}

/* drain: read the echo to its end; the bytes read */
async function drain(client: net.Socket): Promise<number> {
  let got = 0;
  client.on('data', (d: Buffer) => {
    got += d.length;
  });
  client.resume();
  await new Promise<void>((r) => client.on('close', () => r()));
  return got;
}

function counters(page: Page): Promise<Record<string, number>> {
  return page.$$eval('td[data-counter]', (tds) =>
    Object.fromEntries(
      tds.map((td) => [td.getAttribute('data-counter'), Number((td as HTMLElement).dataset.value)]),
    ),
  );
}
