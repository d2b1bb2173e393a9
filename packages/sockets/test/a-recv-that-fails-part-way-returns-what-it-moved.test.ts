/*
 * A recv that fails part-way, with any kernel error, returns the count of the bytes it moved.
 *
 * The README promises a recv never drops bytes: one that fails consumes nothing, one that fails after
 * progress returns the count it moved. An attacker found the second half held for EFAULT only: when a
 * later step of the same recv failed with EIO (the page-in of a file-backed part of the buffer), ENOMEM
 * or ESRCH (the process exited while the copy slept), the recv threw -- and the bytes of its earlier
 * steps were consumed all the same, lost to the caller. Transfer mode makes that the common shape:
 * whole pages move first (no sleep), and the copy of the next chunk is what sleeps and fails. Now any
 * KernelError after progress returns the count (soreceive.ts receiveInto); the stream goes on exactly
 * where the recv said it stopped.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Prot } from '@loanout/core';
import { afterEach, describe, expect, it } from 'vitest';
import type { Socket } from '../src/index.js';
import { expectAtRest, KiB, PAGE_SIZE, pair, pattern, Scope, until } from './helpers.js';

const scope = new Scope();
afterEach(() => scope.cleanup());

const unread = (so: Socket) => so.recvQueued;

describe('a recv that fails after it moved bytes', () => {
  for (const mode of ['transfer', 'copy'] as const) {
    it(`(${mode}) a page-in that fails with EIO on the second chunk: the first chunk's count returned, the rest follows`, async () => {
      const dir = await mkdtemp(join(tmpdir(), 'loanout-recv-eio-'));
      scope.defer(() => rm(dir, { recursive: true, force: true }));
      await writeFile(join(dir, 'f'), Buffer.alloc(PAGE_SIZE, 0x7a));
      const k = scope.kernel();
      /* chunks of two pages: chunk 1 = two whole pages of the stream, chunk 2 = one more page */
      const { so, remote } = await pair(scope, k, () => {}, { recvChunkBytes: 8 * KiB, recvChunks: 4 });
      const data = pattern(3 * PAGE_SIZE, 5);
      remote.write(data);
      await until(() => unread(so) === data.length, 'the bytes arrive');

      /* the buffer: [two anon pages][a private writable file page, not read in yet] */
      const p = k.createProcess();
      scope.defer(() => (p.exited ? undefined : p.exit()));
      const anon = p.mmap(2 * PAGE_SIZE);
      const file = await p.mmapFile(join(dir, 'f'), { prot: Prot.READ | Prot.WRITE });
      expect(file).toBe(anon + 2 * PAGE_SIZE);

      /* the page-in of the file page fails (a disk error) */
      k.setIoHook((ev) => {
        if (ev.kind === 'vnode-read') throw new Error('injected disk error');
      });
      let first: number | Error;
      try {
        first = await so.recv(p, anon, 3 * PAGE_SIZE, { mode });
      } catch (err) {
        first = err as Error;
      }
      k.setIoHook(null);

      /* what the first recv reports it moved, plus what the next recvs get, is the whole stream */
      const moved = typeof first === 'number' ? first : 0;
      const good = p.mmap(3 * PAGE_SIZE);
      let got = 0;
      while (unread(so) > 0) got += await so.recv(p, good + got, 3 * PAGE_SIZE - got);
      const rest = await p.read(good, got);
      expect({ moved, rest: got }).toEqual({ moved: 2 * PAGE_SIZE, rest: PAGE_SIZE });
      expect(rest.equals(data.subarray(moved))).toBe(true);
      await so.close({ linger: 0 });
      expectAtRest(k);
    });
  }

  it('(transfer) the process exiting while the copy of the second chunk sleeps: two pages returned, the rest follows', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'loanout-recv-eio-'));
    scope.defer(() => rm(dir, { recursive: true, force: true }));
    await writeFile(join(dir, 'f'), Buffer.alloc(PAGE_SIZE, 0x7a));
    const k = scope.kernel();
    const { so, remote } = await pair(scope, k, () => {}, { recvChunkBytes: 8 * KiB, recvChunks: 4 });
    const data = pattern(3 * PAGE_SIZE, 6);
    remote.write(data);
    await until(() => unread(so) === data.length, 'the bytes arrive');
    const p = k.createProcess();
    const anon = p.mmap(2 * PAGE_SIZE);
    await p.mmapFile(join(dir, 'f'), { prot: Prot.READ | Prot.WRITE });
    k.setIoHook((ev) => {
      if (ev.kind === 'vnode-read' && !p.exited) p.exit();
    });
    const r = so.recv(p, anon, 3 * PAGE_SIZE, { mode: 'transfer' });
    r.catch(() => {});
    let outcome: string;
    try {
      outcome = `returned ${await r}`;
    } catch (err) {
      outcome = `threw ${(err as { code?: string }).code}`;
    }
    k.setIoHook(null);
    /* another process reads on: the stream must go on where the first recv said it stopped */
    const q = k.createProcess();
    scope.defer(() => (q.exited ? undefined : q.exit()));
    const good = q.mmap(3 * PAGE_SIZE);
    let got = 0;
    while (unread(so) > 0) got += await so.recv(q, good + got, 3 * PAGE_SIZE - got);
    /* the recv says it moved the two pages, and the third follows */
    expect({ outcome, got }).toEqual({ outcome: `returned ${2 * PAGE_SIZE}`, got: PAGE_SIZE });
    await so.close({ linger: 0 });
    expectAtRest(k);
  });
});
