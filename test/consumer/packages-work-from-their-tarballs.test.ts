/*
 * The four packages as someone outside this repository gets them: packed with `pnpm pack` (which
 * builds each one first: every dist/ is deleted before), installed from the tarballs into a plain npm
 * project, then used from an ES module, from CommonJS, and from strict TypeScript under module
 * node16 (a "commonjs" project and a "module" one) and moduleResolution bundler -- each doing a loan,
 * a send by loan to a TCP server on 127.0.0.1 and the page map (try-loanout.*). publint and
 * arethetypeswrong (root devDependencies, run offline) check each tarball. The declarations are held
 * to the public surface: every declaration carries its TSDoc (the contract's `=>` lines for editors),
 * and public-surface.ts checks that strict TypeScript refuses what users must not do (write a page's
 * loan count, make a Socket with `new`, reach the page flags or a socket's send buffer). The commands are the
 * README's "Use it in your own project", and a test below holds the README to them.
 *
 * It needs the npm registry once per machine (typescript and @types/node; npm's cache serves them
 * after that). It takes about a minute on an idle 2-core machine: the four builds (two at a time), the
 * first tsc (which checks every declaration file, @types/node's too), then the rest. Every step is
 * bounded.
 */
import { type ExecFileException, execFile } from 'node:child_process';
import { copyFile, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const HERE = fileURLToPath(new URL('.', import.meta.url));
const PACKAGES = ['core', 'mbuf', 'sockets', 'pagemap'];

/* in the clone of loanout (the README's commands, word for word) */
const PACK = ['packs=$(mktemp -d)', 'pnpm --filter "./packages/*" pack --pack-destination "$packs"'];
/* in the new project (the README's, word for word; the README makes the directory first) */
const INSTALL = ['npm init -y', 'npm install "$packs"/*.tgz', 'npm install --save-dev typescript@5.9.3'];
const RUN = {
  esm: 'node try-loanout.mjs',
  cjs: 'node try-loanout.cjs',
  tsc: 'npx tsc -p tsconfig.json',
  ran: 'node out/try-loanout.js',
};
const FIXTURES = [
  'try-loanout.mjs',
  'try-loanout.cjs',
  'try-loanout.ts',
  'tsconfig.json',
  'tsconfig.bundler.json',
  'public-surface.ts',
  'tsconfig.surface.json',
];

/* the root's devDependencies publint and attw, installed by `pnpm install --frozen-lockfile`: no network */
const BIN = join(ROOT, 'node_modules/.bin');
const tarball = (p: string) => join(packs, `loanout-${p}-0.1.0.tgz`);

let tmp = '';
let app = '';
let packs = '';

interface Ran {
  code: number;
  out: string;
}

/* sh: run a bash script in `cwd` with a clean environment, bounded; resolves with its exit code and output */
function sh(script: string, cwd: string, timeoutMs = 120_000): Promise<Ran> {
  const env: Record<string, string> = {};
  /* not the npm_* settings of the pnpm that runs the tests: npm would read them as its own */
  for (const [k, v] of Object.entries(process.env)) if (!/^npm_/i.test(k) && v !== undefined) env[k] = v;
  Object.assign(env, {
    TMPDIR: tmp,
    packs,
    npm_config_audit: 'false',
    npm_config_fund: 'false',
    npm_config_update_notifier: 'false',
    npm_config_prefer_offline: 'true',
  });
  return new Promise((resolve) => {
    execFile(
      'bash',
      ['-c', `set -eo pipefail\n${script}`],
      { cwd, env, timeout: timeoutMs, maxBuffer: 16 << 20 },
      (err: ExecFileException | null, stdout, stderr) => {
        const code = err === null ? 0 : typeof err.code === 'number' ? err.code : 1;
        resolve({ code, out: `${stdout}${stderr}${err?.killed ? '\n(killed: it took too long)' : ''}` });
      },
    );
  });
}

/*
 * declarations: every declaration of a .d.ts, by name ("uvmLoan", "Socket.send"; an overload or a
 * merged declaration counts again), with its TSDoc text ('' when it has none); private members left out
 */
function declarations(file: string, text: string): { name: string; doc: string }[] {
  const src = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true);
  const out: { name: string; doc: string }[] = [];
  const add = (node: ts.Node, name: string) => {
    const ranges = ts.getLeadingCommentRanges(text, node.getFullStart()) ?? [];
    const docs = ranges.filter((r) => text.startsWith('/**', r.pos)).map((r) => text.slice(r.pos, r.end));
    out.push({ name, doc: docs.join('\n') });
  };
  for (const st of src.statements) {
    if (ts.isExportDeclaration(st) || ts.isImportDeclaration(st)) continue;
    if (ts.isVariableStatement(st)) {
      for (const d of st.declarationList.declarations) add(st, d.name.getText(src));
      continue;
    }
    const name = (st as ts.DeclarationStatement).name?.getText(src) ?? ts.SyntaxKind[st.kind];
    add(st, name);
    const members = ts.isClassDeclaration(st) || ts.isInterfaceDeclaration(st) ? st.members : [];
    for (const m of members as ts.NodeArray<ts.ClassElement | ts.TypeElement>) {
      if (ts.getCombinedModifierFlags(m as ts.Declaration) & ts.ModifierFlags.Private) continue;
      add(m, `${name}.${m.name?.getText(src) ?? 'constructor'}`);
    }
  }
  return out;
}

/* ok: the script ran and exited 0, or the test fails with its output */
async function ok(script: string, cwd = app, timeoutMs?: number): Promise<string> {
  const r = await sh(script, cwd, timeoutMs);
  if (r.code !== 0) throw new Error(`\`${script}\` exited ${r.code}:\n${r.out}`);
  return r.out;
}

beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'loanout-consumer-'));
  app = join(tmp, 'my-experiment');
  await mkdir(app);
  /* `pnpm pack` must build: no dist/ to fall back on */
  for (const p of PACKAGES) await rm(join(ROOT, 'packages', p, 'dist'), { recursive: true, force: true });
  const packed = await ok(`${PACK.join('\n')}\necho "packs=$packs"`, ROOT, 150_000);
  packs = /^packs=(.*)$/m.exec(packed)![1];
  await ok(INSTALL.join('\n'), app, 150_000);
  for (const f of FIXTURES) await copyFile(join(HERE, f), join(app, f));
  /* the same file in a "type": "module" project (beside, sharing its node_modules) */
  await mkdir(join(app, 'esm'));
  await writeFile(join(app, 'esm/package.json'), '{ "type": "module" }\n');
  for (const f of ['try-loanout.ts', 'tsconfig.json']) await copyFile(join(HERE, f), join(app, 'esm', f));
}, 300_000);

afterAll(async () => {
  if (tmp !== '') await rm(tmp, { recursive: true, force: true });
});

describe('the packages, packed and installed into a plain npm project', () => {
  it('are four tarballs of built code, declarations for import and require, README and LICENSE, no sources', async () => {
    const tarballs = (await readdir(packs)).filter((f) => f.endsWith('.tgz')).sort();
    expect(tarballs).toEqual(PACKAGES.map((p) => `loanout-${p}-0.1.0.tgz`).sort());
    for (const t of tarballs) {
      const files = (await ok(`tar tzf "${join(packs, t)}"`)).split('\n').filter(Boolean).sort();
      for (const f of ['index.js', 'index.cjs', 'index.d.ts', 'index.d.cts'])
        expect(files, t).toContain(`package/dist/${f}`);
      expect(files, t).toContain('package/LICENSE');
      expect(files, t).toContain('package/README.md');
      expect(
        files.filter((f) => f.startsWith('package/src/') || f.includes('.test.')),
        t,
      ).toEqual([]);
    }
    const pagemap = await ok(`tar tzf "${join(packs, 'loanout-pagemap-0.1.0.tgz')}"`);
    expect(pagemap).toContain('package/static/index.html');
    expect(pagemap).toContain('package/static/app.js');
  });

  it('install with nothing missing: @types/node comes as their peer, workspace versions are real ones', async () => {
    await ok('npm ls --all');
    const types = JSON.parse(await readFile(join(app, 'node_modules/@types/node/package.json'), 'utf8'));
    expect(Number(types.version.split('.')[0])).toBeGreaterThanOrEqual(20);
    const sockets = JSON.parse(
      await readFile(join(app, 'node_modules/@loanout/sockets/package.json'), 'utf8'),
    );
    expect(sockets.dependencies).toMatchObject({ '@loanout/core': '0.1.0', '@loanout/mbuf': '0.1.0' });
  });

  it('carry their TSDoc comments in the declarations, for editors to show', async () => {
    const dts = await readFile(join(app, 'node_modules/@loanout/pagemap/dist/index.d.ts'), 'utf8');
    expect(dts).toMatch(
      /\/\*\*\n \* startPageMap: serve the live page map of `kernel` on 127\.0\.0\.1\.\n \* => /,
    );
    expect(dts).toMatch(
      /declare function startPageMap\(kernel: Kernel, opts\?: PageMapOptions\): Promise<PageMap>;/,
    );
  });

  it('carry a TSDoc comment on every declaration, with the contract lines of the key calls', async () => {
    const decls: Record<string, { name: string; doc: string }[]> = {};
    for (const p of PACKAGES) {
      const file = join(app, `node_modules/@loanout/${p}/dist/index.d.ts`);
      decls[p] = declarations(file, await readFile(file, 'utf8'));
      expect(decls[p].length, p).toBeGreaterThan(0);
      expect(
        decls[p].filter((d) => d.doc === '').map((d) => d.name),
        p,
      ).toEqual([]);
    }
    const doc = (p: string, name: string) => decls[p].find((d) => d.name === name)?.doc ?? '';
    expect(doc('core', 'uvmLoan')).toMatch(
      /^\/\*\*\n \* uvmLoan: loan out the pages .*\n \* => start and len page-aligned/,
    );
    expect(doc('core', 'uvmLoan')).toMatch(/\n \* => throws EFAULT/);
    expect(doc('core', 'VmPage.loanCount')).toContain('@readonly');
    expect(doc('mbuf', 'mbufLoan')).toMatch(
      /\* mbufLoan: a chain over the user's bytes[\s\S]*\n \* => any va and len/,
    );
    expect(doc('sockets', 'Socket.send')).toMatch(
      /\* send: [\s\S]*\n {5}\* => rejects at once, with nothing sent: EINVAL/,
    );
    expect(doc('sockets', 'Socket.recv')).toMatch(
      /\* recv: read up to len bytes [\s\S]*\n {5}\* => waits for data/,
    );
  });

  it("hold users to the public surface: strict TypeScript refuses writes to the kernel's fields, its internals and `new`", async () => {
    /* as written: every `@ts-expect-error` is used, and what a user may do compiles */
    await ok('npx tsc -p tsconfig.surface.json');
    /* without those comments: each line after one fails, with the error the comment names */
    const lines = (await readFile(join(HERE, 'public-surface.ts'), 'utf8')).split('\n');
    const expected = new Map<number, string>();
    const bare = lines.map((line, i) => {
      const m = /^\s*\/\/ @ts-expect-error (TS\d+)/.exec(line);
      if (m !== null) expected.set(i + 2, m[1]);
      return m === null ? line : '';
    });
    expect(expected.size).toBeGreaterThanOrEqual(15);
    await writeFile(join(app, 'public-surface.ts'), bare.join('\n'));
    const r = await sh('npx tsc -p tsconfig.surface.json', app);
    const got = new Map<number, string[]>();
    for (const m of r.out.matchAll(/public-surface\.ts\((\d+),\d+\): error (TS\d+)/g)) {
      got.set(Number(m[1]), [...(got.get(Number(m[1])) ?? []), m[2]]);
    }
    expect(r.code).not.toBe(0);
    expect([...got.keys()].sort((a, b) => a - b)).toEqual([...expected.keys()].sort((a, b) => a - b));
    for (const [line, code] of expected) expect(got.get(line), `line ${line}`).toContain(code);
  }, 120_000);

  it('work from an ES module (import)', async () => {
    expect(await ok(RUN.esm)).toMatch(/^ok: loaned "hello, loan", sent 16384 bytes by loan, page map 200/);
  });

  it('work from CommonJS (require), with the same module import() gets', async () => {
    expect(await ok(RUN.cjs)).toMatch(/^ok: .* page map 200, one copy: true/);
  });

  it('type-check under strict TypeScript, module node16, in a "type": "commonjs" project, and run', async () => {
    expect(JSON.parse(await readFile(join(app, 'package.json'), 'utf8')).type ?? 'commonjs').toBe('commonjs');
    await ok(RUN.tsc);
    expect(await readFile(join(app, 'out/try-loanout.js'), 'utf8')).toContain('require("@loanout/core")');
    expect(await ok(RUN.ran)).toMatch(/^ok: /);
  }, 120_000);

  it('type-check under strict TypeScript, module node16, in a "type": "module" project, and run', async () => {
    /* the declarations were checked in full just above (.d.cts and .d.ts are the same bytes); here
       what differs is how TypeScript resolves and reads them, which skipLibCheck does not skip */
    await ok(`${RUN.tsc} --skipLibCheck`, join(app, 'esm'));
    expect(await readFile(join(app, 'esm/out/try-loanout.js'), 'utf8')).toContain("from '@loanout/core'");
    expect(await ok(RUN.ran, join(app, 'esm'))).toMatch(/^ok: /);
  }, 120_000);

  it('type-check under strict TypeScript, moduleResolution bundler', async () => {
    await ok('npx tsc -p tsconfig.bundler.json --skipLibCheck');
  }, 120_000);

  it('pass publint, strict', async () => {
    const outs = await Promise.all(PACKAGES.map((p) => ok(`${BIN}/publint --strict "${tarball(p)}"`, ROOT)));
    for (const [i, out] of outs.entries()) expect(out, PACKAGES[i]).toContain('All good!');
  }, 120_000);

  it('pass arethetypeswrong in every resolution mode (node10, node16 from CJS and ESM, bundler)', async () => {
    const outs = await Promise.all(
      PACKAGES.map((p) => ok(`${BIN}/attw --format table-flipped "${tarball(p)}"`, ROOT)),
    );
    for (const [i, out] of outs.entries()) expect(out, PACKAGES[i]).toContain('No problems found');
  }, 120_000);

  it('are used in the README with exactly these commands', async () => {
    const readme = await readFile(join(ROOT, 'README.md'), 'utf8');
    const section = readme.slice(readme.indexOf('## Use it in your own project'));
    expect(section.startsWith('## Use it in your own project')).toBe(true);
    for (const line of [...PACK, ...INSTALL, ...Object.values(RUN)]) expect(section).toContain(line);
    const tsBlock = /```ts\n([\s\S]*?)```/.exec(section)?.[1];
    expect(tsBlock).toBe(await readFile(join(HERE, 'try-loanout.ts'), 'utf8'));
  });
});
