/*
 * Options are read once. What a call checks is what it uses: each option is read a single time, so a
 * getter that would answer differently on a second read (or a caller that changes the object while a
 * call is under way) cannot slip an unchecked value past the checks. (Found by an attack on the
 * socket layer: sockConnect read `port`, and createEchoServer `kernel`, more than once.)
 */
import type { Kernel } from '@loanout/core';
import { afterEach, describe, expect, it } from 'vitest';
import { createEchoServer, sockConnect } from '../src/index.js';
import { expectAtRest, Scope } from './helpers.js';

const scope = new Scope();
afterEach(() => scope.cleanup());

/* a getter's values: `first` for the first `reads` reads, then `then`; and how often it was read */
function flipping(first: unknown, then: unknown, reads: number) {
  const g = { n: 0, get: () => (g.n++ < reads ? first : then) };
  return g;
}

describe('options are read once', () => {
  it('sockConnect: a port getter, valid then -1, is read once and the valid port is used', async () => {
    const k = scope.kernel();
    const peer = await scope.peer();
    const port = flipping(peer.port, -1, 1);
    const so = scope.socket(
      await sockConnect(k, {
        get port() {
          return port.get() as number;
        },
      }),
    );
    expect(port.n).toBe(1);
    expect(so.remotePort).toBe(peer.port);
    await so.close({ linger: 0 });
    expectAtRest(k);
  });

  it('createEchoServer: a kernel getter that changes after the first read is read once', async () => {
    const k = scope.kernel();
    const kernel = flipping(k, {}, 1);
    const echo = scope.echo(
      await createEchoServer({
        port: 0,
        get kernel() {
          return kernel.get() as Kernel;
        },
      }),
    );
    expect(kernel.n).toBe(1);
    expect(echo.kernel).toBe(k);
    await echo.close();
    expectAtRest(k);
  });
});
