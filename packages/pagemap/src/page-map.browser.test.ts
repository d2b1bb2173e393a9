/// <reference lib="dom" />
/*
 * End to end, in a real headless Chromium (Debian's, driven by playwright-core; no browser is ever
 * downloaded): an echo server with the page map, a client whose transfer is held in flight, and the
 * page must show loaned frames during the transfer, none after, and the kernel's own counters.
 * Skipped, saying so, only where /usr/bin/chromium is not installed (.ci/run installs it).
 */
import { existsSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Kernel, PAGE_SIZE, uvmLoan, uvmUnloanPages } from '@loanout/core';
import { mbufStats } from '@loanout/mbuf';
import { createEchoServer } from '@loanout/sockets';
import { type Browser, chromium } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startPageMap } from './page-map-server.js';

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

describe.skipIf(!haveChromium)('the live page map in a browser', () => {
  it('shows loaned frames while an echo is in flight, none after, and the kernel counters', async () => {
    const echo = await createEchoServer({ port: 0, mode: 'loan' });
    const map = await startPageMap(echo.kernel, { intervalMs: 50 });
    const page = await browser!.newPage();
    try {
      await page.goto(map.url);
      await page.waitForFunction(() => Number(document.querySelector('canvas')!.dataset.updates ?? 0) > 0);
      /* a client that sends 32 MiB and reads nothing yet: once the host's socket buffers are full, the
         server's loaned sends stay in flight */
      const client = net.connect(echo.port, '127.0.0.1');
      client.pause();
      await new Promise<void>((r) => client.once('connect', () => r()));
      client.end(Buffer.alloc(32 << 20, 0x5a));
      await page.waitForFunction(
        () => Number(document.querySelector('canvas')!.dataset.loanedToKernel) > 0,
        null,
        {
          timeout: 20_000,
        },
      );
      await page.screenshot({ path: join(tmpdir(), 'loanout-page-map.png') });
      let got = 0;
      client.on('data', (d: Buffer) => {
        got += d.length;
      });
      client.resume();
      await new Promise<void>((r) => client.on('close', () => r()));
      expect(got).toBe(32 << 20);
      await page.waitForFunction(
        () => Number(document.querySelector('canvas')!.dataset.loanedToKernel) === 0,
        null,
        {
          timeout: 20_000,
        },
      );
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
      const shown = await page.$$eval('td[data-counter]', (tds) =>
        Object.fromEntries(tds.map((td) => [td.getAttribute('data-counter'), Number(td.dataset.value)])),
      );
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

  it('zooms, and a click pins a frame to show its owner, loan and wire counts live', async () => {
    const k = new Kernel({ physPages: 32768 });
    const map = await startPageMap(k, { intervalMs: 50, title: 'browser test' });
    const page = await browser!.newPage({ viewport: { width: 1400, height: 900 } });
    const p = k.createProcess();
    try {
      const va = p.mmap(PAGE_SIZE);
      await p.write(va, Buffer.alloc(PAGE_SIZE, 1));
      const [pg] = await uvmLoan(p.map, va, PAGE_SIZE, 'kernel');
      await page.goto(map.url);
      await page.waitForFunction(() => document.querySelector('canvas')!.dataset.loanedToKernel === '1');
      expect(await page.title()).toBe('browser test: live page map');
      /* 32768 frames: 256 per row, fitted to the window */
      const fit = await page.$eval('canvas', (c) => ({ w: c.width, h: c.height }));
      expect(fit.w % 256).toBe(0);
      expect(fit.h).toBe(fit.w / 2);
      await page.click('#zoom-in');
      expect(await page.$eval('canvas', (c) => c.width)).toBe(2 * fit.w);
      await page.click('#zoom-fit');
      expect(await page.$eval('canvas', (c) => c.width)).toBe(fit.w);
      const cell = fit.w / 256;
      await page.click('canvas', {
        position: { x: (pg.frame % 256) * cell + cell / 2, y: Math.floor(pg.frame / 256) * cell + cell / 2 },
      });
      const pinned = await page.waitForFunction((frame) => {
        const el = document.getElementById('frame')!;
        return el.dataset.frame === String(frame) && el.textContent!.includes('(pinned)') && el.textContent;
      }, pg.frame);
      const text = String(await pinned.jsonValue());
      expect(text).toContain('"state": "loaned to kernel"');
      expect(text).toContain('"loanCount": 1');
      expect(text).toContain('"wireCount": 1');
      /* pinned, it follows the frame: after the unloan it shows the loan gone */
      uvmUnloanPages([pg]);
      await page.waitForFunction(() =>
        document.getElementById('frame')!.textContent!.includes('"loanCount": 0'),
      );
      /* the legend follows on the next update (the pinned frame's details may come first) */
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
});
