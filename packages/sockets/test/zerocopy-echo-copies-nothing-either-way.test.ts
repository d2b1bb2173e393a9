/*
 * The zerocopy echo copies nothing, either way, for any client. Bytes go out by loan, and come in by
 * page transfer -- including the last, partly filled page of each read, which moves whole with the
 * rest of it zeroed (recv's `tail: 'zero-fill'`), so that a client typing short lines (as nc does),
 * or one writing blobs of any size with pauses between them (as a python client's sendall does), is
 * echoed byte for byte with 0 bytes copied in and 0 copied out. Also when the ring's buffers are not a
 * whole number of pages: a receive into a buffer of 10 000 bytes used to stop 1808 bytes into a page
 * of the receive area, and every later receive, into the next page-aligned buffer, then started
 * unaligned and copied it all (found by an attack: 86% of the bytes copied in); now zerocopy receives
 * into the whole pages mmap maps for each buffer.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { KiB, random, Scope, zeroCopyEcho } from './helpers.js';

const scope = new Scope();
afterEach(() => scope.cleanup());

describe('the zerocopy echo copies nothing either way', () => {
  it('for short lines typed one at a time (an nc client)', async () => {
    const lines = ['hello\n', 'world\n', 'a longer line, still well short of a page\n', '\n', 'x'];
    const st = await zeroCopyEcho(scope, {}, [lines.map((l) => Buffer.from(l))], { ms: 15, every: 1 });
    /* each line came in as one partly filled page, its tail zeroed */
    expect(st.recvZeroFilledBytes).toBeGreaterThan(0);
  });

  it('for blobs of any size written with pauses (a python client sendall-ing)', async () => {
    const sizes = [1, 4095, 4096, 4097, 100 * KiB + 3, 64 * KiB, 333, 1024 * KiB + 1];
    await zeroCopyEcho(scope, {}, [sizes.map((n) => random(n))], { ms: 10, every: 1 });
  });

  it('with a ring of 10 000-byte buffers: it receives into the whole pages mapped for each', async () => {
    const pieces = [random(1024 * KiB + 1), Buffer.from('hello\n'), random(100_000)];
    await zeroCopyEcho(scope, { bufferBytes: 10_000 }, [pieces], { ms: 10, every: 1 });
  });
});
