/*
 * tsup.package.ts: how every published package (core, mbuf, sockets, pagemap) is built, in one place.
 *
 * One ESM bundle (dist/index.js) with its declarations (dist/index.d.ts); then scripts/cjs-entry.mjs
 * adds the CommonJS door: dist/index.cjs, which is only `module.exports = require('./index.js')`, and
 * dist/index.d.cts, the same declarations read as CommonJS.
 *
 * Why not a second, CommonJS build (tsup's format: ['esm', 'cjs'])? Because the packages check each
 * other's objects with `instanceof` (a Kernel handed to mbuf or sockets, KernelError, Proc, VmPage,
 * Mbuf) and keep state per module (each kernel's mbuf system). Two builds would mean two copies of
 * each class as soon as one program reaches a package both by `import` and by `require` (the
 * dual-package hazard): a Kernel made by one copy is "not a kernel" to the other. Node >= 20.19 (our
 * engine floor) loads ES modules with require(), returning the very module `import` returns, so
 * there is only ever one copy: `require('@loanout/core').Kernel === (await import('@loanout/core')).Kernel`.
 * The cost: the packages must never use top-level await (require() of an ES module refuses it); the
 * consumer test (test/consumer) requires every package and would fail first.
 *
 * The declarations keep TSDoc comments (`/** ... *\/`, which editors show on hover) and drop anything
 * marked `@internal` (stripInternal); scripts/tsup-package.test.ts proves both on a small fixture.
 * They start with `/// <reference types="node" />` where they name Node's types (Buffer, node:net),
 * so a consumer's program loads @types/node (a peer dependency, which npm installs) even when its
 * tsconfig lists no types.
 */
import type { Options } from 'tsup';

export interface PackageBuild {
  /* the declarations name Node's types (Buffer, node:net, node:http) */
  nodeTypes: boolean;
}

/**
 * packageConfig: the tsup options of a published package, built from its src/index.ts into dist/.
 * => run from the package's directory (tsup's cwd); `pnpm build` then runs scripts/cjs-entry.mjs
 */
export function packageConfig(build: PackageBuild): Options {
  return {
    entry: ['src/index.ts'],
    format: ['esm'],
    dts: {
      compilerOptions: { stripInternal: true, removeComments: false },
      ...(build.nodeTypes ? { banner: '/// <reference types="node" />' } : {}),
    },
    clean: true,
    sourcemap: true,
    target: 'node20',
  };
}
