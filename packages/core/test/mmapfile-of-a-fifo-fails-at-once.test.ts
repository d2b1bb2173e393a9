/*
 * mmapFile of something that is not a regular file fails at once with EINVAL: the kernel looks at the
 * file's type before it opens it, and opens without blocking. Opening a FIFO for reading waits for a
 * writer, forever, in one of Node's four file-I/O threads; a few such calls would stop every file
 * operation of the process.
 *
 * The hang needs a FIFO this process may only read (a FIFO opened read-write does not wait). An
 * ordinary user gets that with mode 0444; root, which ignores modes, takes the identity of `nobody`
 * (effective uid only, for the call) to make it.
 */
import { execFileSync } from 'node:child_process';
import { constants } from 'node:fs';
import { chmod, open } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { Kernel, KernelError } from '../src/index.js';
import { useTmpDir } from './helpers.js';

const NOBODY = 65534;

/* within: the promise's outcome, or 'hung' if it has not settled after ms */
async function within(p: Promise<unknown>, ms: number): Promise<unknown> {
  let timer: NodeJS.Timeout | undefined;
  const hung = new Promise((resolve) => {
    timer = setTimeout(() => resolve('hung'), ms);
  });
  try {
    return await Promise.race([
      p.then(
        () => 'mapped',
        (err: unknown) => err,
      ),
      hung,
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/* asReader: run fn with an identity that may read the FIFO but not write it */
async function asReader<T>(fn: () => Promise<T>): Promise<T> {
  const root = process.geteuid?.() === 0;
  if (root) process.seteuid?.(NOBODY);
  try {
    return await fn();
  } finally {
    if (root) process.seteuid?.(0);
  }
}

describe('mmapFile of a FIFO', () => {
  const tmp = useTmpDir();

  it('fails at once with EINVAL and leaves no file-I/O thread waiting', async () => {
    const fifo = path.join(tmp.dir, 'fifo');
    execFileSync('mkfifo', [fifo]);
    await chmod(fifo, 0o444);
    await chmod(tmp.dir, 0o755);
    const k = new Kernel({ physPages: 16, swapPages: 0 });
    const p = k.createProcess();
    const attempt = p.mmapFile(fifo);
    const outcome = await asReader(() => within(attempt, 2000));
    if (outcome === 'hung') {
      /* unblock the waiting open (a writer arrives), so the thread is given back, then fail */
      const w = await open(fifo, constants.O_WRONLY | constants.O_NONBLOCK);
      await w.close();
      await attempt.catch(() => undefined);
    }
    expect(outcome).toBeInstanceOf(KernelError);
    expect((outcome as KernelError).code).toBe('EINVAL');
    expect(k.uvm.vnodes.size).toBe(0);
    p.exit();
    await k.idle();
    k.checkInvariants();
  });
});
