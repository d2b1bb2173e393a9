/*
 * recv refuses null options, as the core does. `so.recv(proc, va, len, { mode, tail })` takes `mode`
 * 'copy' | 'transfer' | 'auto' and `tail` 'copy' | 'zero-fill', each defaulting when left out. The
 * core's rule for options (param.ts `option`): "only undefined means left out: null is a value (and
 * the caller's check refuses it)" -- mmap({ prot: null }) is EINVAL. recv read its options with
 * `??`, so `{ tail: null }` and `{ mode: null }` silently became the defaults: a caller who meant
 * something else (a config value that came back null) got a copy and never heard of it. (Found by an
 * attack on the new `tail` option; every option of the socket layer and mbufInit is now read with the
 * core's `option`, and the bad-option lists of sockConnect, sockListen, createEchoServer, send, close
 * and mbufInit carry nulls.)
 */
import { afterEach, describe, expect, it } from 'vitest';
import { expectAtRest, expectError, pair, pattern, Scope, until } from './helpers.js';

const scope = new Scope();
afterEach(() => scope.cleanup());

describe('recv with an option that is null', () => {
  for (const opts of [{ tail: null }, { mode: null }, { mode: 'transfer', tail: null }]) {
    it(`${JSON.stringify(opts)}: EINVAL naming soreceive, nothing consumed`, async () => {
      const k = scope.kernel();
      const { so, remote } = await pair(scope, k);
      remote.write(pattern(100, 1));
      await until(() => so.recvQueued === 100, 'the bytes arrive');
      const p = k.createProcess();
      const va = p.mmap(4096);
      const err = await expectError(so.recv(p, va, 100, opts as never), 'EINVAL');
      expect(err.message).toMatch(/soreceive/);
      expect(so.recvQueued).toBe(100);
      p.exit();
      await so.close({ linger: 0 });
      expectAtRest(k);
    });
  }
});
