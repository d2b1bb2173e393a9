/*
 * 64 concurrent clients each send 16 MiB of random data through an echo server and check, by
 * SHA-256, that exactly their bytes came back. The clients are processes of one kernel, the server's
 * connections processes of another; both talk real TCP on 127.0.0.1. The server's memory is bounded
 * by its configuration (ring + receive area per connection), whatever the load, and when it is all
 * over nothing is loaned, mapped or open on either side.
 */
import { mbufStats } from '@loanout/mbuf';
import { afterEach, describe, expect, it } from 'vitest';
import type { EchoMode, SendMode } from '../src/index.js';
import { createEchoServer } from '../src/index.js';
import { echoClient, expectAtRest, KiB, MiB, PAGE_SIZE, Scope, until } from './helpers.js';

const scope = new Scope();
afterEach(() => scope.cleanup());

const RING = { bufferBytes: 64 * KiB, buffers: 4, recvChunkBytes: 32 * KiB, recvChunks: 4 };
/* pages one connection may hold: its ring and its receive area (loans lend the ring's own pages) */
const PAGES_PER_CONN = (RING.bufferBytes * RING.buffers + RING.recvChunkBytes * RING.recvChunks) / PAGE_SIZE;

/* zerocopy does not wait for a send to be done before it reuses a buffer: bound it by the send buffer */
const ZEROCOPY_HIWAT = 256 * KiB;

async function run(clients: number, bytes: number, mode: EchoMode, clientMode: SendMode) {
  const hiwat = mode === 'zerocopy' ? { sendHighWater: ZEROCOPY_HIWAT } : {};
  const echo = scope.echo(await createEchoServer({ port: 0, mode, ...RING, ...hiwat }));
  const server = echo.kernel;
  const physPages = server.stats().physPages;
  let minFree = physPages;
  let maxKva = 0;
  const sample = setInterval(() => {
    minFree = Math.min(minFree, server.stats().freePages);
    maxKva = Math.max(maxKva, mbufStats(server).kvaPagesInUse);
  }, 20);
  const window = 512 * KiB;
  const client = scope.kernel({ physPages: 4096 + clients * ((3 * window) / PAGE_SIZE + 64) });
  try {
    const runs = await Promise.all(
      Array.from({ length: clients }, () => echoClient(client, echo.port, bytes, clientMode, window)),
    );
    for (const r of runs) {
      expect(r.bytes).toBe(bytes);
      expect(r.echoed).toBe(r.sent);
    }
    expect(new Set(runs.map((r) => r.sent)).size).toBe(clients);
  } finally {
    clearInterval(sample);
  }
  await until(() => echo.stats().activeConnections === 0, 'every connection closes', 3000);
  const st = echo.stats();
  expect(st).toMatchObject({
    connections: clients,
    activeConnections: 0,
    errors: 0,
    bytesEchoed: clients * bytes,
  });
  if (mode === 'loan') expect(st.loanedBytes).toBe(clients * bytes);
  if (mode === 'copy') expect(st.copiedBytes).toBe(clients * bytes);
  if (mode === 'zerocopy') {
    /* nothing copied either way: out by loan, in by page transfer (partly filled pages too, zeroed after the bytes) */
    expect(st).toMatchObject({ loanedBytes: clients * bytes, copiedBytes: 0 });
    expect(st).toMatchObject({ recvTransferredBytes: clients * bytes, recvCopiedBytes: 0 });
  }

  /*
   * bounded memory: never more than each connection's ring and receive area -- plus, by copy, clusters
   * for at most a ring's worth of bytes in flight (a ring buffer is reused only once its send is done)
   */
  const copies =
    mode === 'loan'
      ? 0
      : mode === 'zerocopy'
        ? ZEROCOPY_HIWAT / PAGE_SIZE
        : (RING.bufferBytes * RING.buffers) / PAGE_SIZE;
  expect(minFree).toBeGreaterThanOrEqual(physPages - clients * (PAGES_PER_CONN + copies));
  expect(maxKva).toBeLessThanOrEqual(mbufStats(server).kvaBudgetPages);

  expect(server.stats().processes).toBe(0);
  expect(server.stats().loanedPages).toBe(0);
  expect(mbufStats(server).kvaPagesInUse).toBe(0);
  expect(client.stats().processes).toBe(0);
  expectAtRest(server);
  expectAtRest(client);
  await echo.close();
  expectAtRest(server);
}

describe('echo: 64 clients x 16 MiB', () => {
  it('loan mode: every client gets exactly its bytes back; the server stays within its memory', async () => {
    await run(64, 16 * MiB, 'loan', 'loan');
  }, 120_000);

  it('zerocopy mode (64 clients x 8 MiB): the same, with nothing copied either way (pages moved in, loaned out)', async () => {
    await run(64, 8 * MiB, 'zerocopy', 'loan');
  }, 120_000);

  it('copy mode (16 clients x 4 MiB): the same, through mbuf clusters', async () => {
    await run(16, 4 * MiB, 'copy', 'copy');
  }, 60_000);
});
