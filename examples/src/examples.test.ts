/*
 * The examples do what the README says they do: the cow demo shows the wire keeping the old bytes,
 * sendfile serves a real file's bytes by loan, and the echo client verifies an echo by hash.
 */
import { createHash } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FrameState, Kernel } from '@loanout/core';
import { createEchoServer } from '@loanout/sockets';
import { afterEach, describe, expect, it } from 'vitest';
import { type CowStep, runCowDemo } from './cow.js';
import { runLoanTour, type TourStep } from './demo.js';
import { runEchoClient } from './echo-client.js';
import { serveFile } from './sendfile.js';

let dir: string | null = null;
afterEach(async () => {
  if (dir !== null) await rm(dir, { recursive: true, force: true });
  dir = null;
});

describe('pnpm cow', () => {
  it('breaks every loaned page on the overwrite, and the peer still gets the original bytes', async () => {
    const steps: [CowStep, number][] = [];
    /* 8 MiB: more than the host's socket buffers take from a peer that doesn't read (a few MiB), so
       the chunk is still in flight, and on loan, when the sender overwrites it */
    const r = await runCowDemo({ pages: 2048, step: (s, stats) => void steps.push([s, stats.loanedPages]) });
    expect(steps).toEqual([
      ['written', 0],
      ['sent', 2048],
      ['overwritten', 2048],
      ['done', 0],
    ]);
    expect(r.receivedHash).toBe(r.sentHash);
    expect(r.overwrittenHash).not.toBe(r.sentHash);
    expect(r.afterWrite.loanBreaks - r.before.loanBreaks).toBe(2048);
    expect(r.afterWrite.loanedPages).toBe(2048);
    expect(r.afterDone.loanedPages).toBe(0);
    expect(r.afterDone.orphansFreed - r.before.orphansFreed).toBe(2048);
  });

  it('a step that throws fails the demo only after the socket, the loans and the process are gone', async () => {
    const k = new Kernel({ physPages: 1024, swapPages: 0 });
    const step = (s: CowStep) => {
      if (s === 'sent') throw new Error('viewer went away');
    };
    await expect(runCowDemo({ pages: 64, kernel: k, step })).rejects.toThrow('viewer went away');
    expect(k.stats()).toMatchObject({ loanedPages: 0, wiredPages: 0, processes: 0 });
    k.checkInvariants();
  });

  it('runs on a kernel it is given, and refuses a bad page count (EINVAL) or more pages than fit (ENOMEM)', async () => {
    const k = new Kernel({ physPages: 5120, swapPages: 0 });
    /* 8 MiB, as above: the host can't take it all, so the overwrite finds every page still on loan */
    const r = await runCowDemo({ pages: 2048, kernel: k });
    expect(r.receivedHash).toBe(r.sentHash);
    expect(k.stats()).toMatchObject({ loanBreaks: 2048, loanedPages: 0 });
    for (const pages of [0, -1, 1.5, Number.NaN, '8'])
      await expect(runCowDemo({ pages: pages as never, kernel: k })).rejects.toMatchObject({
        code: 'EINVAL',
      });
    await expect(runCowDemo({ pages: 6000, kernel: k })).rejects.toMatchObject({ code: 'ENOMEM' });
    expect(k.stats().freePages).toBe(k.stats().physPages);
    k.checkInvariants();
  });
});

describe('pnpm demo', () => {
  it('tours every kind of loan, and each step shows on the page map as it says', async () => {
    const k = new Kernel({ physPages: 64, swapPages: 0 });
    const seen: Record<string, Record<string, number>> = {};
    const step = (s: TourStep) => {
      const counts: Record<string, number> = {};
      for (const code of k.frameStates()) {
        const name = Object.keys(FrameState).find((n) => FrameState[n as keyof typeof FrameState] === code)!;
        if (name !== 'FREE') counts[name] = (counts[name] ?? 0) + 1;
      }
      seen[s] = counts;
    };
    const end = await runLoanTour({ kernel: k, step });
    expect(seen['a->k']).toEqual({ LOANED_TO_KERNEL: 4 });
    expect(seen['loan broken']).toEqual({ LOANED_TO_KERNEL: 3, ORPHAN: 1, ANON: 1 });
    expect(seen.unloaned).toEqual({ ANON: 4 });
    expect(seen['o->k']).toEqual({ LOANED_TO_KERNEL: 4 });
    expect(seen['o->a']).toEqual({ LOANED_TO_ANON: 4 });
    expect(seen['file unmapped']).toEqual({ ORPHAN: 4 });
    expect(seen['zero-fill']).toEqual({ ZERO: 1 });
    expect(seen.done).toEqual({});
    expect(end).toMatchObject({ loansAnon: 4, loansObj: 4, loansOA: 4, loansZero: 4, loanBreaks: 1 });
    expect(end.freePages).toBe(64);
  });
});

describe('pnpm sendfile', () => {
  it('serves a real file by O->K loans, byte for byte, then releases every loan', async () => {
    dir = await mkdtemp(join(tmpdir(), 'loanout-'));
    const path = join(dir, 'payload.bin');
    const data = Buffer.alloc(300_000);
    for (let i = 0; i < data.length; i++) data[i] = (i * 31 + 7) & 0xff;
    await writeFile(path, data);
    const srv = await serveFile(path, '127.0.0.1', 0, new Kernel({ physPages: 1024 }));
    const got = await fetchAll(srv.listener.port);
    expect(sha256(got)).toBe(sha256(data));
    await srv.listener.close();
    const s = srv.kernel.stats();
    expect(srv.served()).toEqual({ connections: 1, bytes: data.length, loanedBytes: data.length });
    expect(s.loansObj).toBe(Math.ceil(data.length / 4096));
    expect(s.loanedPages).toBe(0);
    srv.kernel.checkInvariants();
  });

  it('refuses a missing file with ENOENT before listening', async () => {
    await expect(serveFile('/nonexistent/loanout-file', '127.0.0.1', 0)).rejects.toMatchObject({
      code: 'ENOENT',
    });
  });
});

describe('pnpm echo:client', () => {
  it('gets its random bytes back from the echo server, verified by hash', async () => {
    const echo = await createEchoServer({ port: 0, mode: 'loan', kernel: new Kernel({ physPages: 2048 }) });
    const k = new Kernel({ physPages: 2048 });
    const results = await Promise.all(
      [1, 2].map(() => runEchoClient(k, '127.0.0.1', echo.port, 1 << 20, 'loan')),
    );
    await echo.close();
    for (const r of results) expect(r).toMatchObject({ bytes: 1 << 20, ok: true });
    expect(k.stats().loanedPages).toBe(0);
    k.checkInvariants();
    echo.kernel.checkInvariants();
  });
});

function fetchAll(port: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    const s = net.connect(port, '127.0.0.1');
    s.on('data', (d) => parts.push(d));
    s.on('end', () => resolve(Buffer.concat(parts)));
    s.on('error', reject);
  });
}

function sha256(b: Uint8Array): string {
  return createHash('sha256').update(b).digest('hex');
}
