/*
 * The packages' build (tsup.package.ts + cjs-entry.mjs), run on a small fixture package exactly as
 * `pnpm build` runs it in packages/*: TSDoc comments reach the declarations, anything marked
 * @internal does not, plain comments do not; `@readonly` properties are readonly there, a
 * `@hideconstructor` class's constructor private, and a class the barrel exports as a type only is
 * exported as a type (dts-finish.mjs); the CommonJS entry hands require() the one ES module.
 */
import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
let dir = '';

const SOURCE = `
/**
 * add: the sum of two numbers.
 * => returns a + b
 */
export function add(a: number, b: number): number {
  return a + b;
}

/** A box users may look into. */
export class Box {
  /** what is in the box */
  readonly value: number;
  /** @internal the box's own bookkeeping, not for users */
  secretCount = 0;
  constructor(value: number) {
    this.value = value;
  }
}

/** @internal a helper the other packages use, not for users */
export function internalHelper(): number {
  return 1;
}

/* plain: a plain comment, which the build drops */
export const PLAIN = 1;

export type { Page } from './page.js';
export { makePage } from './page.js';
`;

/* a kernel object: users look at it, only its own module writes and makes it */
const PAGE = `
/**
 * A page users may look at.
 *
 * @hideconstructor
 */
export class Page {
  /** @readonly loans of the page */
  loanCount = 0;
  /** already readonly */
  readonly frame = 7;
  /** @internal the kernel's */
  flags = 0;
  /** @internal made by makePage */
  constructor() {}
}

/** makePage: a page, on loan once => returns it */
export function makePage(): Page {
  const pg = new Page();
  pg.loanCount++;
  return pg;
}
`;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'loanout-build-'));
  await mkdir(join(dir, 'src'));
  await writeFile(join(dir, 'src/index.ts'), SOURCE);
  await writeFile(join(dir, 'src/page.ts'), PAGE);
  await writeFile(join(dir, 'package.json'), JSON.stringify({ name: 'fixture', type: 'module' }));
  await writeFile(
    join(dir, 'tsconfig.json'),
    JSON.stringify({ compilerOptions: { target: 'ES2022', module: 'NodeNext', strict: true, types: [] } }),
  );
  await writeFile(
    join(dir, 'tsup.config.ts'),
    `import { packageConfig } from ${JSON.stringify(join(ROOT, 'scripts/tsup.package.ts'))};\n` +
      'export default { ...packageConfig({ nodeTypes: true }), silent: true };\n',
  );
  /* what each package's "build" script runs: tsup && node ../../scripts/cjs-entry.mjs dist */
  execFileSync(join(ROOT, 'node_modules/.bin/tsup'), [], { cwd: dir, stdio: 'pipe' });
  execFileSync(process.execPath, [join(ROOT, 'scripts/cjs-entry.mjs'), 'dist'], { cwd: dir, stdio: 'pipe' });
}, 60_000);

afterAll(async () => {
  if (dir !== '') await rm(dir, { recursive: true, force: true });
});

describe('the packages build', () => {
  it('keeps TSDoc comments in the declarations and strips @internal members and exports', async () => {
    const dts = await readFile(join(dir, 'dist/index.d.ts'), 'utf8');
    expect(dts.split('\n')[0]).toBe('/// <reference types="node" />');
    expect(dts).toContain('add: the sum of two numbers.');
    expect(dts).toContain('=> returns a + b');
    expect(dts).toContain('/** what is in the box */');
    expect(dts).toMatch(/readonly value: number/);
    expect(dts).toMatch(/declare function add\(a: number, b: number\): number/);
    expect(dts).not.toContain('secretCount');
    expect(dts).not.toContain('internalHelper');
    expect(dts).not.toContain('plain comment');
    /* the CommonJS declarations are the same declarations */
    expect(await readFile(join(dir, 'dist/index.d.cts'), 'utf8')).toBe(dts);
  });

  it('makes `@readonly` properties readonly, `@hideconstructor` constructors private, type-only exports types', async () => {
    const dts = await readFile(join(dir, 'dist/index.d.ts'), 'utf8');
    expect(dts).toMatch(/\/\*\* @readonly loans of the page \*\/\n\s+readonly loanCount: number;/);
    expect(dts).toMatch(/\n\s+readonly frame = 7;/);
    expect(dts).not.toMatch(/readonly readonly/);
    expect(dts).not.toContain('flags');
    expect(dts).toMatch(/declare class Page \{\n\s+private constructor\(\);\n/);
    expect(dts).toMatch(/export \{[^}]*\btype Page\b[^}]*\}/);
    expect(dts).toMatch(/export \{[^}]*\bmakePage\b[^}]*\}/);
    expect(dts).not.toMatch(/type makePage/);
    /* and the JavaScript agrees: Page is not a value export, makePage is */
    const out = execFileSync(
      process.execPath,
      ['-e', "import('./dist/index.js').then((m) => console.log(typeof m.Page, m.makePage().loanCount))"],
      { cwd: dir, encoding: 'utf8' },
    );
    expect(out.trim()).toBe('undefined 1');
  });

  it('gives require() and import one and the same module', () => {
    const out = execFileSync(
      process.execPath,
      [
        '-e',
        `const c = require('./dist/index.cjs');
         import('./dist/index.js').then((m) => console.log(c.add(2, 3), c.Box === m.Box, c.add === m.add));`,
      ],
      { cwd: dir, encoding: 'utf8' },
    );
    expect(out.trim()).toBe('5 true true');
  });
});
