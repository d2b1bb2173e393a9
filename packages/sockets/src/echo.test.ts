import { KernelError, PAGE_SIZE, VM_MAX_ADDRESS, VM_MIN_ADDRESS } from '@loanout/core';
import { afterEach, describe, expect, it } from 'vitest';
import {
  BAD_SOCKET_OPTIONS,
  connectAndDrain,
  drain,
  echoClient,
  expectAtRest,
  expectError,
  expectPortFree,
  freePort,
  hashUntilClose,
  KiB,
  MiB,
  plainConnect,
  random,
  Scope,
  sha256,
  until,
} from '../test/helpers.js';
import { createEchoServer } from './echo.js';
import { sockConnect } from './uipc_syscalls.js';

const scope = new Scope();
afterEach(() => scope.cleanup());

describe('createEchoServer', () => {
  for (const mode of ['copy', 'loan', 'auto', 'zerocopy'] as const) {
    it(`echoes every byte back in ${mode} mode, and counts what it did`, async () => {
      const echo = scope.echo(
        await createEchoServer({
          kernel: scope.kernel({ physPages: 8192 }),
          port: 0,
          mode,
          autoThreshold: 16 * KiB,
        }),
      );
      expect(echo.mode).toBe(mode);
      expect(echo.host).toBe('127.0.0.1');
      expect(echo.port).toBeGreaterThan(0);
      const client = scope.kernel({ physPages: 8192 });
      const run = await echoClient(client, echo.port, 3 * MiB + 17, 'loan', 256 * KiB);
      expect(run.bytes).toBe(3 * MiB + 17);
      expect(run.echoed).toBe(run.sent);
      await until(() => echo.stats().activeConnections === 0, 'the connection ends');
      const st = echo.stats();
      expect(st).toMatchObject({
        connections: 1,
        activeConnections: 0,
        bytesEchoed: 3 * MiB + 17,
        errors: 0,
        dropped: 0,
        refused: 0,
        idleClosed: 0,
      });
      if (mode === 'copy') expect(st).toMatchObject({ loanedBytes: 0, copiedBytes: 3 * MiB + 17 });
      if (mode === 'loan') expect(st).toMatchObject({ loanedBytes: 3 * MiB + 17, copiedBytes: 0 });
      if (mode === 'auto') expect(st.loanedBytes + st.copiedBytes).toBe(3 * MiB + 17);
      if (mode === 'zerocopy') {
        expect(st).toMatchObject({ loanedBytes: 3 * MiB + 17, copiedBytes: 0 });
        expect(st.recvTransferredBytes + st.recvCopiedBytes).toBe(3 * MiB + 17);
        expect(st.recvTransferredBytes).toBeGreaterThan(0);
      } else {
        expect(st).toMatchObject({ recvCopiedBytes: 3 * MiB + 17, recvTransferredBytes: 0 });
      }
      expect(st.loanChains + st.copyChains).toBeGreaterThan(0);
      expect(echo.kernel.stats().processes).toBe(0);
      await echo.close();
      expectAtRest(echo.kernel);
    });
  }

  it('works with any TCP client: a plain node:net client that writes, half-closes and reads', async () => {
    const echo = scope.echo(
      await createEchoServer({ kernel: scope.kernel({ physPages: 8192 }), port: 0, mode: 'loan' }),
    );
    const c = scope.plain(await plainConnect(echo.port));
    const back = hashUntilClose(c);
    const data = random(5 * MiB + 3);
    for (let off = 0; off < data.length; off += 64 * KiB) c.write(data.subarray(off, off + 64 * KiB));
    c.end();
    const got = await back;
    expect(got.error).toBeNull();
    expect(got.length).toBe(data.length);
    expect(got.hash).toBe(sha256(data));
    await until(() => echo.stats().activeConnections === 0, 'the server side ends');
    expect(echo.stats().bytesEchoed).toBe(data.length);
    await echo.close();
    expectAtRest(echo.kernel);
  });

  it('runs in a default 128 MiB kernel of its own when given none', async () => {
    const echo = scope.echo(await createEchoServer({ port: 0 }));
    expect(echo.mode).toBe('auto');
    expect(echo.kernel.stats().physPages).toBe(32768);
    const c = scope.plain(await plainConnect(echo.port));
    const back = drain(c);
    c.end('hello');
    expect((await back).bytes.toString()).toBe('hello');
    await echo.close();
    expectAtRest(echo.kernel);
  });

  it('serves many clients at once, each getting its own bytes back', async () => {
    const echo = scope.echo(
      await createEchoServer({ kernel: scope.kernel({ physPages: 8192 }), port: 0, mode: 'loan' }),
    );
    const client = scope.kernel({ physPages: 8192 });
    const runs = await Promise.all(
      Array.from({ length: 8 }, (_, i) =>
        echoClient(client, echo.port, 512 * KiB + i, i % 2 ? 'copy' : 'loan', 128 * KiB),
      ),
    );
    for (const [i, r] of runs.entries()) {
      expect(r.bytes).toBe(512 * KiB + i);
      expect(r.echoed).toBe(r.sent);
    }
    expect(new Set(runs.map((r) => r.sent)).size).toBe(8);
    await until(() => echo.stats().activeConnections === 0, 'every connection ends');
    expect(echo.stats().connections).toBe(8);
    await echo.close();
    expectAtRest(echo.kernel);
  });

  it('close ends open connections and releases everything', async () => {
    const echo = scope.echo(
      await createEchoServer({ kernel: scope.kernel({ physPages: 8192 }), port: 0, mode: 'loan' }),
    );
    const c = scope.plain(await plainConnect(echo.port));
    const parts: Buffer[] = [];
    c.on('data', (d: Buffer) => parts.push(d));
    c.on('error', () => {});
    const closed = new Promise((r) => c.once('close', r));
    c.write('still here');
    await until(() => Buffer.concat(parts).length === 10, 'the echo of the first bytes');
    expect(Buffer.concat(parts).toString()).toBe('still here');
    expect(echo.stats().activeConnections).toBe(1);
    await echo.close();
    await closed;
    await until(() => echo.stats().activeConnections === 0, 'the connection ends');
    await expectError(sockConnect(scope.kernel(), { port: echo.port }), 'ECONNREFUSED');
    expectAtRest(echo.kernel);
  });

  it('refuses bad options with EINVAL and a port in use with EADDRINUSE', async () => {
    const k = scope.kernel();
    await expectError(createEchoServer({ kernel: k, port: 0, mode: 'fast' as never }), 'EINVAL');
    await expectError(createEchoServer({ kernel: k, port: 0, bufferBytes: 0 }), 'EINVAL');
    await expectError(createEchoServer({ kernel: k, port: 0, bufferBytes: 1.5 }), 'EINVAL');
    await expectError(createEchoServer({ kernel: k, port: 0, buffers: 0 }), 'EINVAL');
    await expectError(createEchoServer({ kernel: k, port: -1 }), 'EINVAL');
    const taken = await scope.peer();
    await expectError(createEchoServer({ kernel: k, port: taken.port }), 'EADDRINUSE');
    expectAtRest(k);
  });

  it('refuses options that are not an object, or bad listener or socket options, with EINVAL before binding the port', async () => {
    const k = scope.kernel();
    const port = await freePort();
    for (const bad of [null, 'x']) {
      const err = await expectError(createEchoServer(bad as never), 'EINVAL');
      expect(err.message).toMatch(/^createEchoServer: options must be an object/);
    }
    const badListen = [0, -1, Number.NaN, 'x'].map((maxConnections) => ({ maxConnections }));
    const badIdle = [-1, 0.5, Number.NaN, '60', 2 ** 31].map((idleTimeoutMs) => ({ idleTimeoutMs }));
    const nulls = [
      'kernel',
      'host',
      'port',
      'mode',
      'maxConnections',
      'bufferBytes',
      'buffers',
      'idleTimeoutMs',
    ].map((o) => ({ [o]: null }));
    for (const bad of [
      ...badListen,
      ...badIdle,
      ...BAD_SOCKET_OPTIONS,
      ...nulls,
      { kernel: {} },
      { buffers: '4' },
    ]) {
      const err = await expectError(createEchoServer({ kernel: k, port, ...bad } as never), 'EINVAL');
      expect(err.message).toMatch(/^createEchoServer: /);
      await expectPortFree(port);
    }
    expect(k.stats().processes).toBe(0);
    expectAtRest(k);
  });

  it('refuses a ring that cannot fit a process address space with EINVAL, before binding the port', async () => {
    const k = scope.kernel();
    const port = await freePort();
    for (const [bufferBytes, buffers] of [
      [512 << 20, 4],
      [256 << 20, 4],
      /* each buffer takes two pages: one page past the top */
      [PAGE_SIZE + 1, (VM_MAX_ADDRESS - VM_MIN_ADDRESS) / PAGE_SIZE / 2 + 1],
    ]) {
      const err = await expectError(createEchoServer({ kernel: k, port, bufferBytes, buffers }), 'EINVAL');
      expect(err.message).toMatch(/^createEchoServer: a ring of .* does not fit/);
      await expectPortFree(port);
    }
    expect(k.stats().processes).toBe(0);
    expectAtRest(k);
  });

  it('serves with the largest ring that fits a process address space', async () => {
    const most = Math.floor((VM_MAX_ADDRESS - VM_MIN_ADDRESS) / 4 / PAGE_SIZE) * PAGE_SIZE;
    const k = scope.kernel();
    const echo = scope.echo(await createEchoServer({ kernel: k, port: 0, bufferBytes: most, buffers: 4 }));
    const c = scope.plain(await plainConnect(echo.port));
    const back = drain(c);
    c.end('hello');
    expect((await back).bytes.toString()).toBe('hello');
    await until(() => echo.stats().activeConnections === 0, 'the connection ends');
    expect(echo.stats().errors).toBe(0);
    expect(k.stats().processes).toBe(0);
    await echo.close();
    expectAtRest(k);
  });

  it('resets a connection whose setup fails, ends its process, counts an error, and goes on serving', async () => {
    const k = scope.kernel({ physPages: 8192 });
    /* the first connection's process cannot map the second buffer of its ring */
    const createProcess = k.createProcess.bind(k);
    let procs = 0;
    k.createProcess = () => {
      const p = createProcess();
      if (++procs > 1) return p;
      const mmap = p.mmap.bind(p);
      let maps = 0;
      p.mmap = (len, opts) => {
        if (++maps === 2) throw new KernelError('ENOMEM', 'mmap: no address space (injected)');
        return mmap(len, opts);
      };
      return p;
    };
    const echo = scope.echo(await createEchoServer({ kernel: k, port: 0, mode: 'loan' }));
    const back = await connectAndDrain(echo.port, 'hello');
    expect(back.bytes.length).toBe(0);
    expect(back.error?.code).toBe('ECONNRESET');
    await until(() => echo.stats().activeConnections === 0, 'the connection is released');
    expect(echo.stats()).toMatchObject({ connections: 1, errors: 1, bytesEchoed: 0 });
    expect(k.stats().processes).toBe(0);
    const run = await echoClient(scope.kernel(), echo.port, 100 * KiB, 'copy', 64 * KiB);
    expect(run.echoed).toBe(run.sent);
    await until(() => echo.stats().activeConnections === 0, 'the second connection ends');
    expect(k.stats().processes).toBe(0);
    await echo.close();
    expectAtRest(k);
  });

  it('counts a client that resets mid-echo as an error, and goes on serving', async () => {
    const echo = scope.echo(
      await createEchoServer({ kernel: scope.kernel({ physPages: 8192 }), port: 0, mode: 'loan' }),
    );
    const bad = scope.plain(await plainConnect(echo.port));
    bad.on('error', () => {});
    bad.pause();
    bad.write(random(4 * MiB));
    await until(() => echo.stats().bytesEchoed > 0, 'the server starts echoing');
    bad.resetAndDestroy();
    await until(() => echo.stats().activeConnections === 0, 'the server gives up the connection');
    expect(echo.stats().errors).toBe(1);
    const client = scope.kernel({ physPages: 4096 });
    const run = await echoClient(client, echo.port, MiB, 'copy', 256 * KiB);
    expect(run.bytes).toBe(MiB);
    expect(run.echoed).toBe(run.sent);
    await echo.close();
    expectAtRest(echo.kernel);
  });

  it('cannot be filled with idle connections: they are closed after idleTimeoutMs and counted, and a newcomer is served', async () => {
    const echo = scope.echo(
      await createEchoServer({ kernel: scope.kernel(), port: 0, maxConnections: 3, idleTimeoutMs: 150 }),
    );
    const idle = await Promise.all([0, 1, 2].map(async () => scope.plain(await plainConnect(echo.port))));
    const ended = idle.map((c) => drain(c));
    await until(() => echo.stats().activeConnections === 3, 'the idle ones are accepted');
    /* a fourth is refused while they hold every slot: a FIN, not a reset, and counted */
    const refusedOne = scope.plain(await plainConnect(echo.port));
    refusedOne.write('hello?');
    const r = await drain(refusedOne);
    expect(r.error).toBeNull();
    expect(r.bytes.length).toBe(0);
    expect(echo.stats().refused).toBe(1);
    /* the idle ones are closed, cleanly, and counted apart from errors */
    for (const e of await Promise.all(ended)) expect(e.error).toBeNull();
    await until(() => echo.stats().activeConnections === 0, 'the idle ones are closed');
    expect(echo.stats()).toMatchObject({ idleClosed: 3, errors: 0, refused: 1 });
    const run = await echoClient(scope.kernel(), echo.port, 100 * KiB, 'copy', 64 * KiB);
    expect(run.echoed).toBe(run.sent);
    await echo.close();
    expectAtRest(echo.kernel);
  });

  it('a connection that keeps echoing is not idle, however long it lasts', async () => {
    const echo = scope.echo(await createEchoServer({ kernel: scope.kernel(), port: 0, idleTimeoutMs: 1000 }));
    const c = scope.plain(await plainConnect(echo.port));
    let got = 0;
    c.on('data', (d: Buffer) => {
      got += d.length;
    });
    /* 15 exchanges, 100 ms apart: longer in all than the idle timeout, never that long without progress */
    for (let i = 1; i <= 15; i++) {
      c.write(Buffer.alloc(1000, i));
      await until(() => got === i * 1000, `echo ${i}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    const ended = drain(c);
    c.end();
    expect((await ended).error).toBeNull();
    await until(() => echo.stats().activeConnections === 0, 'the connection ends');
    expect(echo.stats()).toMatchObject({ idleClosed: 0, errors: 0, bytesEchoed: 15_000 });
    await echo.close();
    expectAtRest(echo.kernel);
  });
});
