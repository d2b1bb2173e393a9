/*
 * A recv never drops bytes, and its waits end. A recv's range is checked again once it has the
 * receive side (it may have waited for another recv): gone by then, it fails with nothing consumed.
 * A copy that fails part-way -- its memory unmapped while it slept on a page-in -- returns the count of
 * the bytes it moved, as soreceive returns what uiomove moved: the stream loses nothing, and the next
 * recv meets the error. A recv waiting in line behind another is watched like one waiting for data:
 * its process's exit ends it. (Found by an attack on the socket layer.)
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Prot } from '@loanout/core';
import { afterEach, describe, expect, it } from 'vitest';
import type { Socket } from '../src/index.js';
import { expectAtRest, failure, PAGE_SIZE, pair, Scope, settled, tick, until } from './helpers.js';

const scope = new Scope();
afterEach(() => scope.cleanup());

/* bytes received and not yet read (the receive area's count) */
const unread = (so: Socket) => (so as unknown as { rcv: { cc: number } }).rcv.cc;
const copying = (so: Socket) => (so as unknown as { copying: boolean }).copying;

/* a pair whose receive area holds 50 x 'a' then 100 x 'b' */
async function twoPieces() {
  const k = scope.kernel();
  const { so, remote } = await pair(scope, k);
  remote.write(Buffer.alloc(50, 0x61));
  await until(() => unread(so) === 50, 'the first piece arrives');
  remote.write(Buffer.alloc(100, 0x62));
  await until(() => unread(so) === 150, 'the second piece arrives');
  return { k, so };
}

describe('a recv whose memory goes', () => {
  it('made read-only between the call and the copy: EFAULT, and nothing consumed', async () => {
    const { k, so } = await twoPieces();
    const p = k.createProcess();
    const base = p.mmap(2 * PAGE_SIZE);
    const r = so.recv(p, base + PAGE_SIZE - 50, 150);
    /* both pages: the two pieces are two reads, copied one after the other (a read-only second page
       alone would fail the recv part-way, after the first piece: it would return 50) */
    p.mprotect(base, 2 * PAGE_SIZE, Prot.READ);
    expect((await failure(r)).code).toBe('EFAULT');
    /* nothing consumed: the next recv gets all 150 bytes */
    const good = p.mmap(PAGE_SIZE);
    const n = await so.recv(p, good, 150);
    expect(n).toBe(150);
    expect(
      (await p.read(good, 150)).equals(Buffer.concat([Buffer.alloc(50, 0x61), Buffer.alloc(100, 0x62)])),
    ).toBe(true);
    p.exit();
    await so.close({ linger: 0 });
    expectAtRest(k);
  });

  it('unmapped while the copy sleeps on a page-in: it returns what it moved, the next recv the rest', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'loanout-att-'));
    scope.defer(() => rm(dir, { recursive: true, force: true }));
    await writeFile(join(dir, 'f'), Buffer.alloc(PAGE_SIZE, 0x7a));
    /* one-page chunks: a full page of 'a' in one, 100 x 'b' in the next */
    const k = scope.kernel();
    const { so, remote } = await pair(scope, k, () => {}, { recvChunkBytes: PAGE_SIZE });
    remote.write(Buffer.concat([Buffer.alloc(PAGE_SIZE, 0x61), Buffer.alloc(100, 0x62)]));
    await until(() => unread(so) === PAGE_SIZE + 100, 'the bytes arrive');
    const p = k.createProcess();
    /* [anon page][private writable file page, not read in yet]: copying the second chunk pages in */
    const anon = p.mmap(PAGE_SIZE);
    await p.write(anon, Buffer.alloc(PAGE_SIZE));
    const file = await p.mmapFile(join(dir, 'f'), { prot: Prot.READ | Prot.WRITE });
    expect(file).toBe(anon + PAGE_SIZE);
    const r = so.recv(p, anon, PAGE_SIZE + 100);
    r.catch(() => {});
    for (let i = 0; i < 50 && unread(so) > 100; i++) await Promise.resolve();
    await Promise.resolve();
    await Promise.resolve();
    expect(copying(so)).toBe(true);
    p.munmap(file, PAGE_SIZE);
    expect(await r).toBe(PAGE_SIZE);
    expect((await p.read(anon, PAGE_SIZE)).equals(Buffer.alloc(PAGE_SIZE, 0x61))).toBe(true);
    const good = p.mmap(PAGE_SIZE);
    expect(await so.recv(p, good, 150)).toBe(100);
    expect((await p.read(good, 100)).equals(Buffer.alloc(100, 0x62))).toBe(true);
    p.exit();
    await so.close({ linger: 0 });
    expectAtRest(k);
  });
});

describe('a recv waiting in line behind another', () => {
  it('ends when its process exits (ESRCH), and the recv ahead of it goes on', async () => {
    const k = scope.kernel();
    const { so } = await pair(scope, k);
    const a = k.createProcess();
    const b = k.createProcess();
    const ahead = so.recv(a, a.mmap(PAGE_SIZE), 100);
    const behind = so.recv(b, b.mmap(PAGE_SIZE), 100);
    ahead.catch(() => {});
    behind.catch(() => {});
    await tick(5);
    b.exit();
    expect(await settled(behind)).toBe(true);
    expect((await failure(behind)).code).toBe('ESRCH');
    expect(await settled(ahead)).toBe(false);
    a.exit();
    expect((await failure(ahead)).code).toBe('ESRCH');
    await so.close({ linger: 0 });
    expectAtRest(k);
  });
});
