import { KernelError, PAGE_SIZE } from '@loanout/core';
import { afterEach, describe, expect, it } from 'vitest';
import {
  BAD_SOCKET_OPTIONS,
  connectAndDrain,
  drain,
  expectAtRest,
  expectError,
  expectPortFree,
  freePort,
  pattern,
  plainConnect,
  Scope,
  settled,
  tick,
  until,
  userMemory,
} from '../test/helpers.js';
import type { Socket } from './uipc_socket.js';
import { sockConnect, sockListen } from './uipc_syscalls.js';

const scope = new Scope();
afterEach(() => scope.cleanup());

describe('sockConnect (connect)', () => {
  it('connects over real TCP and takes its receive area from the kernel', async () => {
    const k = scope.kernel();
    const peer = await scope.peer();
    const free0 = k.stats().freePages;
    const so = scope.socket(
      await sockConnect(k, { port: peer.port, recvChunkBytes: 2 * PAGE_SIZE, recvChunks: 3 }),
    );
    expect(so.isOpen).toBe(true);
    expect(so.remotePort).toBe(peer.port);
    expect(so.kernel).toBe(k);
    expect(k.stats().freePages).toBe(free0 - 6);
    await so.close();
    expect(k.stats().freePages).toBe(free0);
    expectAtRest(k);
  });

  it('is refused with ECONNREFUSED by a port just closed, and keeps nothing', async () => {
    const k = scope.kernel();
    const port = await freePort();
    const free0 = k.stats().freePages;
    const err = await expectError(sockConnect(k, { host: '127.0.0.1', port }), 'ECONNREFUSED');
    expect(err.message).toMatch(/sockConnect/);
    expect(k.stats().freePages).toBe(free0);
    expectAtRest(k);
  });

  it('refuses bad arguments with EINVAL before touching the network or memory', async () => {
    const k = scope.kernel();
    const free0 = k.stats().freePages;
    await expectError(sockConnect({} as never, { port: 80 }), 'EINVAL');
    await expectError(sockConnect(null as never, { port: 80 }), 'EINVAL');
    await expectError(sockConnect(k, { port: 0 }), 'EINVAL');
    await expectError(sockConnect(k, { port: -1 }), 'EINVAL');
    await expectError(sockConnect(k, { port: 65536 }), 'EINVAL');
    await expectError(sockConnect(k, { port: 80.5 }), 'EINVAL');
    await expectError(sockConnect(k, { port: '80' as never }), 'EINVAL');
    await expectError(sockConnect(k, undefined as never), 'EINVAL');
    await expectError(sockConnect(k, { host: '', port: 80 }), 'EINVAL');
    await expectError(sockConnect(k, { host: 42 as never, port: 80 }), 'EINVAL');
    await expectError(sockConnect(k, { port: 80, recvChunkBytes: 1000 }), 'EINVAL');
    await expectError(sockConnect(k, { port: 80, recvChunks: 1 }), 'EINVAL');
    expect(k.stats().freePages).toBe(free0);
    expectAtRest(k);
  });

  it('refuses bad socket options with EINVAL naming sockConnect, before connecting or taking memory', async () => {
    const k = scope.kernel();
    const peer = await scope.peer();
    const free0 = k.stats().freePages;
    /* a receive area larger than the kernel's 16 MiB of RAM could never be had */
    const tooBig = { recvChunkBytes: 8 * 1024 * 1024, recvChunks: 3 };
    for (const bad of [...BAD_SOCKET_OPTIONS, tooBig]) {
      const err = await expectError(sockConnect(k, { port: peer.port, ...bad } as never), 'EINVAL');
      expect(err.message).toMatch(/^sockConnect: /);
    }
    await expectError(sockConnect(k, null as never), 'EINVAL');
    await expectError(sockConnect(k, 'port 80' as never), 'EINVAL');
    await tick(20);
    expect(peer.conns).toHaveLength(0);
    expect(k.stats().freePages).toBe(free0);
    expectAtRest(k);
  });

  it('fails with ENOMEM when the kernel has no room for the receive area, keeping nothing', async () => {
    const k = scope.kernel({ physPages: 48 });
    const peer = await scope.peer();
    const first = scope.socket(await sockConnect(k, { port: peer.port }));
    const free0 = k.stats().freePages;
    await expectError(sockConnect(k, { port: peer.port }), 'ENOMEM');
    expect(k.stats().freePages).toBe(free0);
    await first.close();
    expectAtRest(k);
  });
});

describe('sockListen (listen + accept)', () => {
  it('resets a connection whose receive area the kernel cannot give, counts it, and goes on', async () => {
    const k = scope.kernel({ physPages: 64, swapPages: 0 });
    const p = k.createProcess();
    await userMemory(p, 40 * PAGE_SIZE);
    let handed = 0;
    /* 32 contiguous pages per receive area: none to be had while the process holds 40 of 64 */
    const lst = await sockListen(k, { port: 0 }, () => {
      handed++;
    });
    const client = await plainConnect(lst.port);
    await new Promise<void>((r) => (client.destroyed ? r() : client.once('close', () => r())));
    await until(() => lst.dropped === 1, 'the connection is dropped');
    expect(handed).toBe(0);
    expect(lst.connections).toBe(0);
    p.exit();
    const ok = await plainConnect(lst.port);
    await until(() => handed === 1, 'the next connection, with memory back, is served');
    expect(lst.dropped).toBe(1);
    ok.destroy();
    await lst.close();
  });

  it('hands each accepted connection to the handler as a socket that receives and sends', async () => {
    const k = scope.kernel();
    const served: Socket[] = [];
    const l = scope.listener(
      await sockListen(k, { port: 0 }, async (so) => {
        served.push(so);
        const p = k.createProcess();
        const va = p.mmap(PAGE_SIZE);
        try {
          for (let i = 0; i < 1000; i++) {
            const n = await so.recv(p, va, PAGE_SIZE);
            if (n === 0) break;
            await (await so.send(p, va, n, { mode: 'copy' })).done;
          }
          await so.close();
        } finally {
          p.exit();
        }
      }),
    );
    expect(l.host).toBe('127.0.0.1');
    expect(l.port).toBeGreaterThan(0);
    const c = scope.plain(await plainConnect(l.port));
    const back = drain(c);
    await until(() => l.connections === 1, 'the listener accepts');
    c.end('ping');
    const got = await back;
    expect(got.bytes.toString()).toBe('ping');
    await until(() => l.connections === 0, 'the connection is released');
    expect(served).toHaveLength(1);
    expect(served[0].isOpen).toBe(false);
    await l.close();
    expectAtRest(k);
  });

  it('close stops listening and closes every accepted connection, releasing everything', async () => {
    const k = scope.kernel();
    const waiting: Promise<number>[] = [];
    const l = await sockListen(k, {}, (so) => {
      const p = k.createProcess();
      waiting.push(so.recv(p, p.mmap(PAGE_SIZE), PAGE_SIZE));
    });
    const a = scope.plain(await plainConnect(l.port));
    const b = scope.plain(await plainConnect(l.port));
    const ends = [drain(a), drain(b)];
    await until(() => l.connections === 2 && waiting.length === 2, 'both are accepted');
    await l.close();
    expect(l.connections).toBe(0);
    expect(await Promise.all(waiting)).toEqual([0, 0]);
    await Promise.all(ends);
    const after = await expectError(sockConnect(k, { port: l.port }), 'ECONNREFUSED');
    expect(after).toBeInstanceOf(KernelError);
    for (const p of k.processes) p.exit();
    expectAtRest(k);
  });

  it('destroys the socket of a handler that throws (its peer sees a reset), and goes on accepting', async () => {
    const k = scope.kernel();
    let calls = 0;
    const l = scope.listener(
      await sockListen(k, {}, async (so) => {
        calls++;
        if (calls === 1) throw new Error('handler bug');
        await so.close();
      }),
    );
    const first = await connectAndDrain(l.port);
    expect(first.error?.code).toBe('ECONNRESET');
    const second = await connectAndDrain(l.port);
    expect(second.error).toBeNull();
    expect(calls).toBe(2);
    await until(() => l.connections === 0, 'both are released');
    await l.close();
    expectAtRest(k);
  });

  it('refuses connections beyond maxConnections (closed at once) and serves the rest', async () => {
    const k = scope.kernel();
    const held: Socket[] = [];
    const l = scope.listener(await sockListen(k, { maxConnections: 1 }, (so) => void held.push(so)));
    const a = scope.plain(await plainConnect(l.port));
    await until(() => l.connections === 1, 'the first is accepted');
    const b = scope.plain(await plainConnect(l.port));
    const bEnd = drain(b);
    await bEnd;
    expect(l.connections).toBe(1);
    expect(await settled(drain(a))).toBe(false);
    await l.close();
    expect(held[0].isOpen).toBe(false);
    expectAtRest(k);
  });

  it('sends to and receives from the accepted socket in loan mode too', async () => {
    const k = scope.kernel();
    const data = pattern(300_000, 7);
    const l = scope.listener(
      await sockListen(k, {}, async (so) => {
        const p = k.createProcess();
        const va = await userMemory(p, data.length, data);
        await (await so.send(p, va, data.length, { mode: 'loan' })).done;
        await so.close();
        p.exit();
      }),
    );
    const c = scope.plain(await plainConnect(l.port));
    const got = await drain(c);
    expect(got.bytes.equals(data)).toBe(true);
    await until(() => l.connections === 0, 'the connection is released');
    expectAtRest(k);
  });

  it('refuses bad arguments with EINVAL and a port in use with EADDRINUSE', async () => {
    const k = scope.kernel();
    const handler = () => {};
    await expectError(sockListen({} as never, {}, handler), 'EINVAL');
    await expectError(sockListen(k, { port: -1 }, handler), 'EINVAL');
    await expectError(sockListen(k, { port: 65536 }, handler), 'EINVAL');
    await expectError(sockListen(k, { port: 1.5 }, handler), 'EINVAL');
    await expectError(sockListen(k, { host: '' }, handler), 'EINVAL');
    await expectError(sockListen(k, {}, 'nope' as never), 'EINVAL');
    const taken = await scope.peer();
    await expectError(sockListen(k, { port: taken.port }, handler), 'EADDRINUSE');
    expectAtRest(k);
  });

  it('refuses options that are not an object, or bad listener or socket options, with EINVAL before binding the port', async () => {
    const k = scope.kernel();
    const free0 = k.stats().freePages;
    const port = await freePort();
    const handler = () => {};
    for (const bad of [null, 'x', 42]) {
      const err = await expectError(sockListen(k, bad as never, handler), 'EINVAL');
      expect(err.message).toMatch(/^sockListen: options must be an object/);
    }
    const badListen = [0, -1, Number.NaN, 'x', 1.5].map((maxConnections) => ({ maxConnections }));
    const nulls = ['host', 'port', 'maxConnections'].map((o) => ({ [o]: null }));
    for (const bad of [...badListen, ...BAD_SOCKET_OPTIONS, ...nulls]) {
      const err = await expectError(sockListen(k, { port, ...bad } as never, handler), 'EINVAL');
      expect(err.message).toMatch(/^sockListen: /);
      await expectPortFree(port);
    }
    expect(k.stats().freePages).toBe(free0);
    /* undefined options are all defaults */
    scope.listener(await sockListen(k, undefined, handler));
    expectAtRest(k);
  });

  it('each kernel keeps its own sockets: a listener on one, a client on another', async () => {
    const server = scope.kernel();
    const client = scope.kernel();
    const l = scope.listener(
      await sockListen(server, {}, async (so) => {
        const p = server.createProcess();
        const va = p.mmap(PAGE_SIZE);
        const n = await so.recv(p, va, PAGE_SIZE);
        await (await so.send(p, va, n, { mode: 'loan' })).done;
        await so.close();
        p.exit();
      }),
    );
    const so = scope.socket(await sockConnect(client, { port: l.port }));
    const p = client.createProcess();
    const va = await userMemory(p, PAGE_SIZE, Buffer.from('hello, kernel'.padEnd(PAGE_SIZE, '.')));
    await (await so.send(p, va, 13, { mode: 'copy' })).done;
    const back = p.mmap(PAGE_SIZE);
    let got = 0;
    for (let i = 0; i < 100 && got < 13; i++) {
      const n = await so.recv(p, back + got, PAGE_SIZE - got);
      if (n === 0) break;
      got += n;
    }
    expect((await p.read(back, got)).toString()).toBe('hello, kernel');
    expect(await so.recv(p, back, 1)).toBe(0);
    await so.close();
    p.exit();
    await until(() => l.connections === 0, 'the server side is released');
    expect(client.stats().processes).toBe(0);
    expect(server.stats().processes).toBe(0);
    expectAtRest(client);
    expectAtRest(server);
  });
  it('holds maxConnections in a burst of connects whose receive areas must wait for memory', async () => {
    const k = scope.kernel({ physPages: 512, swapPages: 4096 });
    const p = k.createProcess();
    const va = p.mmap(4 << 20);
    await p.write(va, Buffer.alloc(4 << 20, 1));
    expect(k.stats().freePages).toBe(0);
    const accepted: Socket[] = [];
    const l = scope.listener(
      await sockListen(k, { maxConnections: 2, recvChunkBytes: 16384, recvChunks: 2 }, (so) => {
        accepted.push(so);
      }),
    );
    const clients = await Promise.all(Array.from({ length: 10 }, () => plainConnect(l.port)));
    for (const c of clients) {
      scope.plain(c);
      c.on('error', () => {});
    }
    await until(() => accepted.length + l.refused + l.dropped >= 10, 'every connection is handled');
    await tick(50);
    expect(accepted.length).toBeLessThanOrEqual(2);
    expect(l.refused).toBeGreaterThanOrEqual(8 - l.dropped);
    for (const so of accepted) await so.close({ linger: 0 });
    p.exit();
    expectAtRest(k);
  });
});
