/*
 * A recv that transfers part of a chunk leaves reading paused. With two chunks, a read that fills
 * one pauses reading (filled(): the arms that follow must find room). A recv in transfer mode that
 * moves three of the full chunk's four pages frees no chunk -- yet transferPages calls freed()
 * unconditionally (src/soreceive.ts), and resumeReading, seeing one free chunk (canResume), resumes
 * the reader: node:net arms the last free chunk, fills it, and its next arm finds none -- a
 * KernelPanic ("soreceive: no free receive chunk to arm") thrown out of node:net's read callback;
 * every later read lands outside the armed chunk, and the rest of the stream never comes. Found by a
 * random interleaving of recvs on two sockets (with 2-chunk receive areas it struck within the first
 * two chunks); main's socket code fails this test the same way.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { KiB, PAGE_SIZE, pair, pattern, Scope, tick } from './helpers.js';

const scope = new Scope();
afterEach(() => scope.cleanup());

/* within: the promise's value, or an error naming `what` if it takes longer than ms */
function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer in ${ms} ms`)), ms);
  });
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
}

describe('a sleeping recv that transfers part of a full chunk', () => {
  it('leaves reading paused until a chunk is free: the whole stream arrives', async () => {
    const k = scope.kernel();
    const { so, remote } = await pair(scope, k, () => {}, { recvChunkBytes: 4 * PAGE_SIZE, recvChunks: 2 });
    const total = 64 * KiB;
    const stream = pattern(total, 5);
    const p = k.createProcess();
    const buf = p.mmap(total);
    /* asleep for data when the first chunk fills: it moves three whole pages by transfer */
    const first = so.recv(p, buf, 3 * PAGE_SIZE, { mode: 'transfer' });
    await tick(5);
    remote.write(stream);
    expect(await first).toBe(3 * PAGE_SIZE);
    /* let node:net read on (it must not: no chunk came free) */
    await tick(20);
    let got = 3 * PAGE_SIZE;
    for (let i = 0; i < 200 && got < total; i++) {
      const n = await within(so.recv(p, buf + got, total - got), 2000, `recv at ${got}`);
      if (n === 0) break;
      got += n;
    }
    expect(got).toBe(total);
    expect((await p.read(buf, total)).equals(stream)).toBe(true);
    p.exit();
  });
});
