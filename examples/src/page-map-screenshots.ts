/*
 * page-map-screenshots.ts: the README's page map screenshots, taken as a student would see the page,
 * in a real headless Chromium (Debian's /usr/bin/chromium through playwright-core: no browser is ever
 * downloaded).
 *
 *   pnpm --filter @loanout/examples screenshots [dir]      (dir defaults to the repository's docs/)
 *
 *   page-map-echo.png    pnpm echo --mode zerocopy --ui, 1400 x 900: a 32 MiB echo held in flight (the
 *                        client reads nothing yet), the focus view of a 32768-frame kernel -- receive
 *                        areas, pages come in by transfer, on loan back to the network, orphans
 *   page-map-demo.png    pnpm demo --ui at its O->A step, reached with the page's "next step" button,
 *                        paused there, one of the file's frames pinned in the frame panel
 *   page-map-cow.png     pnpm cow --ui after the overwrite: the sender's new pages, the orphans
 *   page-map-phone.png   the echo view at a phone's width, 420 x 900
 *
 * Each view is set up exactly (the echo held in flight, the walkthrough paused at its step) before its
 * picture is taken, so the pictures say what the README says they do.
 */
import { existsSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { FrameState, Kernel, type KernelStats } from '@loanout/core';
import { type PageMap, startPageMap } from '@loanout/pagemap';
import { createEchoServer } from '@loanout/sockets';
import { type Browser, chromium, type Page } from 'playwright-core';
import { isMain } from './cli.js';
import { COW_TITLES, cowStepText, runCowDemo } from './cow.js';
import { runLoanTour, TOUR_TITLES } from './demo.js';
import { echoAbout } from './echo-server.js';

const CHROMIUM = '/usr/bin/chromium';
const ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--no-first-run',
  '--disable-background-networking',
];

/* openPage: a page of `width` x `height` on the map, once its first update is drawn */
async function openPage(browser: Browser, map: PageMap, width: number, height: number): Promise<Page> {
  const page = await browser.newPage({ viewport: { width, height } });
  await page.goto(map.url);
  await page.waitForFunction(() => Number(document.body.dataset.updates ?? 0) > 0);
  return page;
}

/*
 * echo: a zero-copy echo of 32 MiB held in flight, pictured at 1400 px (watched from before the echo
 * began, one frame that came in by transfer and is on loan pinned) and at 420 px
 */
async function echo(browser: Browser, dir: string): Promise<void> {
  const server = await createEchoServer({ port: 0, mode: 'zerocopy' });
  const map = await startPageMap(server.kernel, {
    title: 'pnpm echo',
    about: echoAbout('zerocopy', server.port),
  });
  const page = await openPage(browser, map, 1400, 900);
  const client = net.connect(server.port, '127.0.0.1');
  client.pause();
  await new Promise<void>((r) => client.once('connect', () => r()));
  client.end(Buffer.alloc(32 << 20, 0x5a));
  try {
    await page.waitForFunction(() => Number(document.body.dataset.loanedToKernel) > 0, null, {
      timeout: 20_000,
    });
    await sleep(1500);
    const states = server.kernel.frameStates();
    const marked = await page.evaluate(() => (window as unknown as PageMapHook).pageMap.marked());
    const lent = marked.filter((f) => states[f] === FrameState.LOANED_TO_KERNEL);
    await pin(page, lent[Math.floor(lent.length / 2)]);
    await page.screenshot({ path: join(dir, 'page-map-echo.png') });
    const phone = await openPage(browser, map, 420, 900);
    await sleep(600);
    await phone.screenshot({ path: join(dir, 'page-map-phone.png') });
    await phone.close();
  } finally {
    client.resume();
    client.on('data', () => {});
    await new Promise<void>((r) => client.on('close', () => r()));
    await page.close();
    await map.close();
    await server.close();
  }
}

/* demo: the tour, stepped with the page's button to its O->A step, paused, a frame pinned */
async function demo(browser: Browser, dir: string): Promise<void> {
  const kernel = new Kernel({ physPages: 256 });
  const map = await startPageMap(kernel, {
    title: 'pnpm demo',
    about: 'a tour of page loanout in a 256-frame kernel',
  });
  const page = await openPage(browser, map, 1400, 900);
  const walk = map.walkthrough({ steps: Object.keys(TOUR_TITLES).length });
  let pictured = false;
  const tour = runLoanTour({
    kernel,
    step: (s, what) => (pictured ? undefined : walk.step({ title: TOUR_TITLES[s], text: what }, 600_000)),
  });
  try {
    await page.click('#step-pause');
    for (let step = 1; step < 5; step++) {
      await page.waitForFunction(
        (n) => document.getElementById('narration')?.dataset.step === String(n),
        step,
      );
      await page.click('#step-next');
    }
    await page.waitForFunction(
      (t) => document.getElementById('step-title')?.textContent === t,
      TOUR_TITLES['o->a'],
    );
    const frame = kernel.frameStates().indexOf(FrameState.LOANED_TO_ANON);
    await pin(page, frame);
    await page.screenshot({ path: join(dir, 'page-map-demo.png') });
  } finally {
    pictured = true;
    walk.done();
    await tour;
    await page.close();
    await map.close();
  }
}

/* cow: the demo at its overwrite, paused there */
async function cow(browser: Browser, dir: string): Promise<void> {
  const pages = 2048;
  const kernel = new Kernel({ physPages: 3 * pages + 1024 });
  const map = await startPageMap(kernel, {
    title: 'pnpm cow',
    about: `${pages} pages sent by loan, then overwritten`,
  });
  const page = await openPage(browser, map, 1400, 900);
  const walk = map.walkthrough({ steps: Object.keys(COW_TITLES).length });
  let before: KernelStats | null = null;
  let pictured = false;
  const run = runCowDemo({
    pages,
    kernel,
    step: (s, stats) => {
      before ??= stats;
      if (pictured) return;
      return walk.step({ title: COW_TITLES[s], text: cowStepText(s, stats, before) }, 600_000);
    },
  });
  try {
    await page.click('#step-pause');
    for (let step = 1; step < 3; step++) {
      await page.waitForFunction(
        (n) => document.getElementById('narration')?.dataset.step === String(n),
        step,
      );
      await page.click('#step-next');
    }
    await page.waitForFunction(
      (t) => document.getElementById('step-title')?.textContent === t,
      COW_TITLES.overwritten,
    );
    await sleep(600);
    await page.screenshot({ path: join(dir, 'page-map-cow.png') });
  } finally {
    pictured = true;
    walk.done();
    await run;
    await page.close();
    await map.close();
  }
}

/* pin: click a frame's cell, and wait for the frame panel to show it */
async function pin(page: Page, frame: number): Promise<void> {
  const rect = await page.evaluate((f) => (window as unknown as PageMapHook).pageMap.cellRect(f), frame);
  if (rect === null) throw new Error(`frame ${frame} is not on the page`);
  await page.mouse.click(rect.x + rect.width / 2, rect.y + rect.height / 2);
  await page.waitForFunction(
    (f) =>
      document.getElementById('frame-panel')?.dataset.frame === String(f) &&
      document.getElementById('f-owner')?.textContent !== '—',
    frame,
  );
}

interface PageMapHook {
  pageMap: {
    cellRect(frame: number): { x: number; y: number; width: number; height: number } | null;
    marked(): number[];
  };
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

async function main(): Promise<void> {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is not installed (apt-get install chromium)`);
  const dir = process.argv[2] ?? fileURLToPath(new URL('../../docs/', import.meta.url));
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ARGS });
  try {
    await echo(browser, dir);
    await demo(browser, dir);
    await cow(browser, dir);
  } finally {
    await browser.close();
  }
  console.log(`screenshots in ${dir}`);
}

if (isMain(import.meta.url)) await main();
