/*
 * A reset by the peer is never an end of stream, also when it lands right behind bytes. recv's
 * contract: 0 at the end of the stream (the peer's FIN), ECONNRESET if the peer reset the connection.
 * On Node 20 (libuv 1.46) a reset that lands while the host socket still holds bytes node:net has not
 * read yet is reported as an end of stream: libuv reads the bytes, sees a short read and a hang-up
 * in the same wakeup, and takes them for the end without reading again (libuv/libuv#4992, fixed
 * upstream by libuv/libuv#4997). node:net emits 'end', no error -- so a recv returned the bytes and
 * then 0, as if the peer had ended a whole stream. (Found by the property test of close and destroy
 * mid-stream, at its 'peerReset'.) Now an 'end' on a socket that has not shut down its own side is
 * checked: after a FIN the host socket still has its peer (CLOSE_WAIT), after a reset it has none.
 */
import type net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { expectAtRest, failure, PAGE_SIZE, pair, pattern, Scope } from './helpers.js';

const scope = new Scope();
afterEach(() => scope.cleanup());

describe('a reset by the peer right behind its bytes', () => {
  it('gives the bytes, then ECONNRESET -- not 0 -- to the reader, and ECONNRESET to close()', async () => {
    for (let round = 0; round < 5; round++) {
      const k = scope.kernel();
      let peerEnd: net.Socket | null = null;
      const { so } = await pair(scope, k, (s) => {
        peerEnd = s;
      });
      const bytes = pattern(3000, round + 1);
      (peerEnd as unknown as net.Socket).write(bytes);
      (peerEnd as unknown as net.Socket).resetAndDestroy();
      const p = k.createProcess();
      const va = p.mmap(PAGE_SIZE);
      await p.write(va, Buffer.alloc(PAGE_SIZE));
      let got = 0;
      let err: string | null = null;
      while (got < bytes.length + 1 && err === null) {
        try {
          const n = await so.recv(p, va + got, PAGE_SIZE - got);
          if (n === 0) break;
          got += n;
        } catch (e) {
          err = (e as { code: string }).code;
        }
      }
      /* the bytes may be lost to the reset, but what came is the stream's, and the end is an error */
      expect((await p.read(va, got)).equals(bytes.subarray(0, got))).toBe(true);
      expect(err, `round ${round}: ${got} bytes, then ${err ?? 'an end of stream'}`).toBe('ECONNRESET');
      expect((await failure(so.close())).code).toBe('ECONNRESET');
      p.exit();
      expectAtRest(k);
    }
  });
});
