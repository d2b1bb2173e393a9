/*
 * A steady stream moves whole by page transfer with tail 'zero-fill': nothing of it is copied. Every
 * read of the host's starts a page, and reads end where the host socket had no more bytes -- on
 * 127.0.0.1 often mid-page even on a steady stream (an attack measured 176 of 529 reads of a 16 MiB
 * stream ending mid-page, at 29 696 bytes into 32 KiB chunks): with the default tail 'copy' those
 * partly filled pages are copied (about 1% of such a stream), with 'zero-fill' they move too.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { expectAtRest, KiB, MiB, pair, random, Scope } from './helpers.js';

const scope = new Scope();
afterEach(() => scope.cleanup());

describe('a steady stream', () => {
  it("received by transfer with tail 'zero-fill' into page-aligned buffers: every byte moved, none copied", async () => {
    const k = scope.kernel({ physPages: 8192 });
    const { so, remote } = await pair(scope, k);
    const total = 16 * MiB;
    const blob = random(MiB);
    /* the peer writes without a pause: each write as soon as the last one drained */
    const writing = (async () => {
      for (let sent = 0; sent < total; sent += MiB) {
        if (!remote.write(blob)) await new Promise((r) => remote.once('drain', r));
      }
    })();
    const p = k.createProcess();
    const va = p.mmap(64 * KiB);
    let got = 0;
    for (let i = 0; got < total && i < 100_000; i++) {
      const n = await so.recv(p, va, 64 * KiB, { mode: 'transfer', tail: 'zero-fill' });
      if (n === 0) break;
      /* the last bytes of this receive are the blob's at their place in the stream */
      const at = (got + n - 1) % MiB;
      expect((await p.read(va + n - 1, 1))[0]).toBe(blob[at]);
      got += n;
    }
    await writing;
    expect(got).toBe(total);
    const st = so.stats();
    expect({ byCopy: st.receivedByCopy, byTransfer: st.receivedByTransfer }).toEqual({
      byCopy: 0,
      byTransfer: total,
    });
    k.checkInvariants();
    p.exit();
    await so.close({ linger: 0 });
    expectAtRest(k);
  });
});
