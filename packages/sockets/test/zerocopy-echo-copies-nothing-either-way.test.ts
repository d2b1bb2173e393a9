/*
 * The zerocopy echo copies nothing, either way, for any client. Bytes go out by loan, and come in by
 * page transfer -- including the last, partly filled page of each read, which moves whole with the
 * rest of it zeroed (recv's `tail: 'zero-fill'`), so that a client typing short lines (as nc does),
 * or one writing blobs of any size with pauses between them (as a python client's sendall does), is
 * echoed byte for byte with 0 bytes copied in and 0 copied out.
 */
import type net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { createEchoServer } from '../src/index.js';
import {
  expectAtRest,
  hashUntilClose,
  KiB,
  plainConnect,
  random,
  Scope,
  sha256,
  tick,
  until,
} from './helpers.js';

const scope = new Scope();
afterEach(() => scope.cleanup());

/* write each piece, pausing between them (so that the server reads them apart), then half-close */
async function writeInPieces(c: net.Socket, pieces: Buffer[], pauseMs: number): Promise<void> {
  for (const p of pieces) {
    c.write(p);
    await tick(pauseMs);
  }
  c.end();
}

async function echoPieces(pieces: Buffer[], pauseMs: number) {
  const echo = scope.echo(
    await createEchoServer({ kernel: scope.kernel({ physPages: 8192 }), port: 0, mode: 'zerocopy' }),
  );
  const c = scope.plain(await plainConnect(echo.port));
  const back = hashUntilClose(c);
  await writeInPieces(c, pieces, pauseMs);
  const got = await back;
  const all = Buffer.concat(pieces);
  expect(got.error).toBeNull();
  expect(got.length).toBe(all.length);
  expect(got.hash).toBe(sha256(all));
  await until(() => echo.stats().activeConnections === 0, 'the connection ends');
  const st = echo.stats();
  expect(st.bytesEchoed).toBe(all.length);
  expect({ in: st.recvCopiedBytes, out: st.copiedBytes }).toEqual({ in: 0, out: 0 });
  expect(st.recvTransferredBytes).toBe(all.length);
  expect(st.loanedBytes).toBe(all.length);
  await echo.close();
  expectAtRest(echo.kernel);
  return st;
}

describe('the zerocopy echo copies nothing either way', () => {
  it('for short lines typed one at a time (an nc client)', async () => {
    const lines = ['hello\n', 'world\n', 'a longer line, still well short of a page\n', '\n', 'x'];
    const st = await echoPieces(
      lines.map((l) => Buffer.from(l)),
      15,
    );
    /* each line came in as one partly filled page, its tail zeroed */
    expect(st.recvZeroFilledBytes).toBeGreaterThan(0);
  });

  it('for blobs of any size written with pauses (a python client sendall-ing)', async () => {
    const sizes = [1, 4095, 4096, 4097, 100 * KiB + 3, 64 * KiB, 333, 1024 * KiB + 1];
    await echoPieces(
      sizes.map((n) => random(n)),
      10,
    );
  });
});
