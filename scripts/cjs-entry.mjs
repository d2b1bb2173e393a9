#!/usr/bin/env node
/*
 * cjs-entry.mjs DIST: give a package built by scripts/tsup.package.ts its CommonJS entry.
 *
 * Writes DIST/index.cjs, which hands require() the package's one ES module (Node >= 20.19 loads ES
 * modules with require(); see tsup.package.ts for why there is no second, CommonJS build), and
 * DIST/index.d.cts, the declarations of DIST/index.d.ts under the name TypeScript reads as CommonJS
 * (under module node16, a "type": "commonjs" project may only import declarations that are).
 * First it finishes DIST/index.d.ts (dts-finish.mjs): `@readonly` properties readonly, `@hideconstructor`
 * constructors private, the barrel's (DIST/../src/index.ts) type-only exports exported as types.
 * Exits 1, saying why, if DIST has no index.js or index.d.ts.
 */
import { copyFileSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { finishDeclarations, typeOnlyExports } from './dts-finish.mjs';

const dist = process.argv[2];
if (dist === undefined) {
  console.error('usage: node scripts/cjs-entry.mjs DIST');
  process.exit(2);
}
for (const f of ['index.js', 'index.d.ts']) {
  if (!existsSync(join(dist, f))) {
    console.error(`cjs-entry: no ${join(dist, f)} (run tsup first)`);
    process.exit(1);
  }
}
writeFileSync(
  join(dist, 'index.cjs'),
  "'use strict';\n" +
    '// CommonJS entry: the package is one ES module, which Node >= 20.19 loads with require(), so that\n' +
    '// require() and import share one copy of every class (instanceof works across them).\n' +
    "module.exports = require('./index.js');\n",
);
const dts = join(dist, 'index.d.ts');
const barrel = join(dist, '../src/index.ts');
const typeOnly = existsSync(barrel) ? typeOnlyExports(readFileSync(barrel, 'utf8')) : new Set();
writeFileSync(dts, finishDeclarations(readFileSync(dts, 'utf8'), typeOnly, dts).text);
copyFileSync(dts, join(dist, 'index.d.cts'));
