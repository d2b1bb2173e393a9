/*
 * A client that resets its connection mid-transfer: the server's send (or its completion, `done`)
 * fails with a typed KernelError -- ECONNRESET or EPIPE, whichever the host reports first -- its
 * receive fails with ECONNRESET, every loan is released, and the server goes on serving the others.
 */
import { type Kernel, KernelError, PAGE_SIZE } from '@loanout/core';
import { mbufStats } from '@loanout/mbuf';
import { afterEach, describe, expect, it } from 'vitest';
import { type Socket, sockConnect, sockListen } from '../src/index.js';
import {
  expectAtRest,
  failure,
  hashUntilClose,
  MiB,
  plainConnect,
  random,
  Scope,
  sha256,
  until,
  userMemory,
} from './helpers.js';

const scope = new Scope();
afterEach(() => scope.cleanup());

interface Outcome {
  kind: string;
  error: KernelError | null;
}

/*
 * serve: one connection's process. The client's first byte says what it wants: 'G' the data once,
 * 'R' the data again and again (it will reset), 'U' to upload until the end (it will reset).
 */
async function serve(k: Kernel, so: Socket, data: Buffer, uploaded = { bytes: 0 }): Promise<Outcome> {
  const p = k.createProcess();
  const dones: Promise<void>[] = [];
  let kind = '?';
  try {
    const cmd = p.mmap(PAGE_SIZE);
    if ((await so.recv(p, cmd, 1)) === 1) kind = (await p.read(cmd, 1)).toString();
    if (kind === 'U') {
      const va = p.mmap(MiB);
      for (let i = 0; i < 100_000; i++) {
        const n = await so.recv(p, va, MiB);
        if (n === 0) break;
        uploaded.bytes += n;
      }
    } else {
      const va = await userMemory(p, data.length, data);
      for (let i = 0; i < (kind === 'R' ? 64 : 1); i++) {
        dones.push((await so.send(p, va, data.length, { mode: 'loan' })).done);
      }
      await Promise.all(dones);
    }
    await so.close();
    return { kind, error: null };
  } catch (err) {
    so.destroy();
    return { kind, error: err as KernelError };
  } finally {
    await Promise.allSettled(dones);
    p.exit();
  }
}

/* a plain client that asks for data ('R'), reads at least `after` bytes of it, then resets */
async function resetAfterReading(port: number, after: number): Promise<number> {
  const c = scope.plain(await plainConnect(port));
  c.on('error', () => {});
  let got = 0;
  const enough = new Promise<void>((resolve) =>
    c.on('data', (d: Buffer) => {
      got += d.length;
      if (got >= after) resolve();
    }),
  );
  c.write('R');
  await enough;
  c.resetAndDestroy();
  return got;
}

/* a plain client that asks for the data once ('G') and hashes all of it */
async function fetchOnce(port: number): Promise<{ hash: string; length: number; error: Error | null }> {
  const c = scope.plain(await plainConnect(port));
  const got = hashUntilClose(c);
  c.write('G');
  return got;
}

describe('a client that resets mid-transfer', () => {
  it('fails the server send with ECONNRESET or EPIPE, releases every loan, and others are still served', async () => {
    const k = scope.kernel({ physPages: 16384 });
    const data = random(4 * MiB);
    const outcomes: Promise<Outcome>[] = [];
    const l = scope.listener(
      await sockListen(k, {}, (so) => {
        outcomes.push(serve(k, so, data));
      }),
    );
    const resets = Array.from({ length: 8 }, () => resetAfterReading(l.port, MiB));
    const goods = Array.from({ length: 4 }, () => fetchOnce(l.port));
    for (const got of await Promise.all(resets)) expect(got).toBeGreaterThanOrEqual(MiB);
    for (const g of await Promise.all(goods)) {
      expect(g.error).toBeNull();
      expect(g.length).toBe(data.length);
      expect(g.hash).toBe(sha256(data));
    }
    await until(() => outcomes.length === 12, 'every connection is served');
    const results = await Promise.all(outcomes);
    const failed = results.filter((r) => r.kind === 'R');
    expect(failed).toHaveLength(8);
    for (const r of failed) {
      expect(r.error).toBeInstanceOf(KernelError);
      expect(['ECONNRESET', 'EPIPE']).toContain(r.error?.code);
    }
    for (const r of results.filter((r) => r.kind === 'G')) expect(r.error).toBeNull();

    await until(() => l.connections === 0, 'every connection is released');
    expect(k.stats().loanedPages).toBe(0);
    expect(mbufStats(k).kvaPagesInUse).toBe(0);
    expect(k.stats().processes).toBe(0);
    expectAtRest(k);

    /* and the listener still serves a newcomer in full */
    const after = await fetchOnce(l.port);
    expect(after.hash).toBe(sha256(data));
    await until(() => l.connections === 0, 'the newcomer is released');
    expectAtRest(k);
  });

  it('fails a server receive waiting for more of an upload with ECONNRESET (not a quiet end of stream)', async () => {
    const k = scope.kernel();
    const outcomes: Promise<Outcome>[] = [];
    const uploaded = { bytes: 0 };
    const l = scope.listener(
      await sockListen(k, {}, (so) => {
        outcomes.push(serve(k, so, Buffer.alloc(1), uploaded));
      }),
    );
    const c = scope.plain(await plainConnect(l.port));
    c.on('error', () => {});
    c.write('U');
    c.write(random(MiB));
    /* the server has taken all of it and waits for more: then the client resets */
    await until(() => uploaded.bytes === MiB, 'the server receives the first MiB');
    c.resetAndDestroy();
    const r = await outcomes[0];
    expect(r.kind).toBe('U');
    expect(r.error).toBeInstanceOf(KernelError);
    expect(r.error?.code).toBe('ECONNRESET');
    await until(() => l.connections === 0, 'the connection is released');
    expectAtRest(k);
  });

  it('a toy-kernel sender whose peer resets gets a typed error, and its loans end', async () => {
    const k = scope.kernel({ physPages: 8192 });
    const peer = await scope.peer((s) => {
      let got = 0;
      s.on('data', (d: Buffer) => {
        got += d.length;
        if (got >= MiB) s.resetAndDestroy();
      });
    });
    const so = scope.socket(await sockConnect(k, { port: peer.port, sendHighWater: 4 * MiB }));
    const p = k.createProcess();
    const va = await userMemory(p, 4 * MiB);
    let error: unknown = null;
    const dones: Promise<void>[] = [];
    try {
      for (let i = 0; i < 64; i++) {
        const r = await so.send(p, va, 4 * MiB, { mode: 'loan' });
        r.done.catch(() => {});
        dones.push(r.done);
      }
    } catch (err) {
      error = err;
    }
    const settledDones = await Promise.allSettled(dones);
    const firstFailure = settledDones.find((d) => d.status === 'rejected') as
      | PromiseRejectedResult
      | undefined;
    const seen = (error ?? firstFailure?.reason) as KernelError;
    expect(seen).toBeInstanceOf(KernelError);
    expect(['ECONNRESET', 'EPIPE']).toContain(seen.code);
    expect(so.isOpen).toBe(false);
    /* close reports the reset too: what we sent may not all have reached the peer's program */
    expect(['ECONNRESET', 'EPIPE']).toContain((await failure(so.close())).code);
    expect(k.stats().loanedPages).toBe(0);
    expect(mbufStats(k).kvaPagesInUse).toBe(0);
    p.exit();
    expectAtRest(k);
  });
});
