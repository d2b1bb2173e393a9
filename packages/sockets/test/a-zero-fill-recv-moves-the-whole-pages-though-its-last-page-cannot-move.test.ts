/*
 * A zero-fill recv moves the whole pages though its last page cannot move. `tail: 'zero-fill'` asks
 * a transfer to move a read's partly filled last page too; where that page of the buffer can't take
 * a transfer (shared memory, a file mapped beside the buffer), only that page should fall back to a
 * copy -- the whole pages before it move as they do with the default tail 'copy'. (Found by an
 * attack: the last page's refusal made the whole step a copy, so asking for *more* zero-copy
 * copied every byte of the read, 8192 of them here that tail 'copy' moves.)
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Kernel, type Proc, Prot } from '@loanout/core';
import { afterEach, describe, expect, it } from 'vitest';
import type { RecvTail } from '../src/index.js';
import { expectAtRest, KiB, PAGE_SIZE, pair, pattern, Scope, until } from './helpers.js';

const scope = new Scope();
afterEach(() => scope.cleanup());

/* two pages of private anonymous memory, and right after them a page `last` maps */
async function bufferWithLastPage(p: Proc, last: 'shared' | 'file-backed'): Promise<number> {
  const va = p.mmap(2 * PAGE_SIZE);
  let vb: number;
  if (last === 'shared') {
    vb = p.mmap(PAGE_SIZE, { shared: true });
  } else {
    const dir = await mkdtemp(join(tmpdir(), 'loanout-zf-'));
    scope.defer(() => rm(dir, { recursive: true, force: true }));
    await writeFile(join(dir, 'f'), Buffer.alloc(PAGE_SIZE, 3));
    vb = await p.mmapFile(join(dir, 'f'), { prot: Prot.READ | Prot.WRITE });
  }
  /* the buffer [va, va + 3 pages) is one range: its last page is the other mapping */
  expect(vb).toBe(va + 2 * PAGE_SIZE);
  return va;
}

/* 10 000 bytes, one read, received into the buffer with `tail`: the socket's stats */
async function receive(k: Kernel, last: 'shared' | 'file-backed', tail: RecvTail) {
  const { so, remote } = await pair(scope, k, () => {}, { recvChunkBytes: 64 * KiB, recvChunks: 4 });
  const data = pattern(10_000, 7);
  remote.write(data);
  await until(() => so.recvQueued === data.length, 'the bytes arrive');
  const p = k.createProcess();
  const va = await bufferWithLastPage(p, last);
  expect(await so.recv(p, va, 3 * PAGE_SIZE, { mode: 'transfer', tail })).toBe(data.length);
  expect((await p.read(va, data.length)).equals(data)).toBe(true);
  const st = so.stats();
  k.checkInvariants();
  p.exit();
  await k.sync();
  await so.close({ linger: 0 });
  return st;
}

describe("a recv with tail 'zero-fill' whose last page cannot take a transfer", () => {
  for (const last of ['shared', 'file-backed'] as const) {
    it(`(${last} last page) still moves the two whole pages before it, as tail 'copy' does; only the last page is copied`, async () => {
      const k = scope.kernel();
      const byCopyTail = await receive(k, last, 'copy');
      expect(byCopyTail).toMatchObject({ receivedByTransfer: 2 * PAGE_SIZE, receivedByCopy: 1808 });
      const byZeroFill = await receive(k, last, 'zero-fill');
      expect({
        receivedByTransfer: byZeroFill.receivedByTransfer,
        receivedByCopy: byZeroFill.receivedByCopy,
        pagesTransferred: byZeroFill.pagesTransferred,
      }).toEqual({ receivedByTransfer: 2 * PAGE_SIZE, receivedByCopy: 1808, pagesTransferred: 2 });
      expectAtRest(k);
    });
  }
});
