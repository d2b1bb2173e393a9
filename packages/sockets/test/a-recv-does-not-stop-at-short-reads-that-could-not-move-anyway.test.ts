/*
 * A recv does not stop at short reads that could not move anyway. A transfer or auto recv stops at
 * the end of a read when the next read's bytes would land mid-page in its buffer, so that the next
 * recv, into a page-aligned buffer, can move them as pages. That only pays when the next read has
 * something that could move: for `auto`, two whole pages ("auto is transfer for runs of at least two
 * whole pages, copy for less"); for `transfer` with the default tail 'copy', one whole page. Reads
 * shorter than that are copied wherever they land -- stopping before them gains nothing and costs a
 * recv call per read: a line protocol (30 short lines queued, as a chat or nc client sends them)
 * then takes 30 recvs in `auto` or `transfer` mode where `copy` takes one. (Found by an attack: every
 * one of the 30 calls copied its 7 bytes.)
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { RecvOptions } from '../src/index.js';
import { expectAtRest, KiB, pair, Scope, tick, until } from './helpers.js';

const scope = new Scope();
afterEach(() => scope.cleanup());

describe('30 short lines queued, each its own read', () => {
  for (const how of [{ mode: 'copy' }, { mode: 'auto' }, { mode: 'transfer' }] as RecvOptions[]) {
    it(`one ${how.mode} recv into a 64 KiB buffer takes them all`, async () => {
      const k = scope.kernel();
      const { so, remote } = await pair(scope, k, () => {}, { recvChunkBytes: 64 * KiB, recvChunks: 8 });
      const lines = Array.from({ length: 30 }, (_, i) => Buffer.from(`line ${String(i).padStart(2, '0')}\n`));
      const all = Buffer.concat(lines);
      for (const line of lines) {
        remote.write(line);
        await tick(2);
      }
      await until(() => so.recvQueued === all.length, 'every line arrives');
      const p = k.createProcess();
      const va = p.mmap(64 * KiB);
      const n = await so.recv(p, va, 64 * KiB, how);
      expect((await p.read(va, n)).equals(all.subarray(0, n))).toBe(true);
      expect(n).toBe(all.length);
      p.exit();
      await so.close({ linger: 0 });
      expectAtRest(k);
    });
  }
});
