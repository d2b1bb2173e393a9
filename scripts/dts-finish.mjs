/*
 * dts-finish.mjs: finish a package's published declarations (dist/index.d.ts) so that they hold users
 * to the public surface the sources mark in TSDoc:
 *
 * - a property marked `@readonly` becomes `readonly`, so that a user's `pg.loanCount = 1` fails to
 *   compile;
 * - a class marked `@hideconstructor` gets `private constructor();` (its own constructor is `@internal`,
 *   left out), so that a user's `new VmPage(...)` fails to compile: the kernel makes its objects;
 * - a name the package's barrel (src/index.ts) exports with `export type` is exported as a type, as it
 *   is in the JavaScript: tsup's declaration bundler (rollup-plugin-dts) exports a class as a value
 *   even when the barrel exports only its type, which would let `new` and `instanceof` compile against
 *   a class the module does not export.
 *
 * Why not in the sources: the kernel's objects (a VmPage, an Mbuf, ...) are written all over the
 * kernel, on its hot paths, and made by other modules and packages. TypeScript has no "readonly (or
 * private) outside this package": a `readonly` field would need a cast at every write inside (dozens,
 * for nothing at run time), a getter over a private field a call at every read, a private constructor
 * a factory in every module that makes one. TSDoc's standard `@readonly` tag means just this
 * ("documented as read-only, even if the type system says otherwise"), and JSDoc's `@hideconstructor`
 * that the constructor is not the users'; we make the type system say it too, where users see the
 * types. Inside the monorepo (the `@loanout/source` condition reads the sources) they stay as written.
 *
 * The result is parsed again and must be valid TypeScript: otherwise it throws.
 */
import ts from 'typescript';

/**
 * finishDeclarations: the declarations `text` with `@readonly` properties readonly, `@hideconstructor`
 * classes' constructors private, and the names in `typeOnly` exported as types.
 * => text: a bundled .d.ts (one `export { ... }` statement at the end, as tsup writes it); typeOnly: the
 *    names the package's barrel exports with `export type`; file: the file's name, for messages
 * => returns the new text and how many changes of each kind it made
 * => throws Error if the changed text no longer parses
 */
export function finishDeclarations(text, typeOnly = new Set(), file = 'index.d.ts') {
  const src = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true, ts.ScriptKind.TS);
  const edits = [];
  const counts = { readonly: 0, constructors: 0, typeExports: 0 };
  const visit = (node) => {
    if ((ts.isPropertyDeclaration(node) || ts.isPropertySignature(node)) && tagged(node, 'readonly')) {
      if (!hasModifier(node, ts.SyntaxKind.ReadonlyKeyword)) {
        edits.push([node.name.getStart(src), 0, 'readonly ']);
        counts.readonly++;
      }
    } else if (ts.isClassDeclaration(node) && tagged(node, 'hideconstructor')) {
      edits.push(privateConstructor(node, src));
      counts.constructors++;
    } else if (
      ts.isExportDeclaration(node) &&
      !node.isTypeOnly &&
      node.exportClause &&
      ts.isNamedExports(node.exportClause)
    ) {
      for (const el of node.exportClause.elements) {
        if (!el.isTypeOnly && typeOnly.has(el.name.text)) {
          edits.push([el.getStart(src), 0, 'type ']);
          counts.typeExports++;
        }
      }
    }
    ts.forEachChild(node, visit);
  };
  visit(src);
  let out = text;
  for (const [pos, del, ins] of edits.sort((a, b) => b[0] - a[0]))
    out = out.slice(0, pos) + ins + out.slice(pos + del);
  const check = ts.createSourceFile(file, out, ts.ScriptTarget.Latest, false, ts.ScriptKind.TS);
  if (check.parseDiagnostics.length > 0) throw new Error(`dts-finish: ${file} no longer parses`);
  return { text: out, ...counts };
}

/**
 * typeOnlyExports: the names a barrel exports with `export type { ... }` (or `export { type X }`)
 * => text: the barrel's source
 */
export function typeOnlyExports(text) {
  const src = ts.createSourceFile('index.ts', text, ts.ScriptTarget.Latest, false, ts.ScriptKind.TS);
  const names = new Set();
  for (const st of src.statements) {
    if (!ts.isExportDeclaration(st) || !st.exportClause || !ts.isNamedExports(st.exportClause)) continue;
    for (const el of st.exportClause.elements) if (st.isTypeOnly || el.isTypeOnly) names.add(el.name.text);
  }
  return names;
}

/* privateConstructor: the edit that makes a class's constructor private (replacing a declared one) */
function privateConstructor(cls, src) {
  const ctor = cls.members.find((m) => ts.isConstructorDeclaration(m));
  if (ctor !== undefined)
    return [ctor.getStart(src), ctor.getEnd() - ctor.getStart(src), 'private constructor();'];
  const open = cls.members.pos;
  return [open, 0, '\n    private constructor();'];
}

/* tagged: the node's TSDoc carries @tag */
function tagged(node, tag) {
  return ts.getJSDocTags(node).some((t) => t.tagName.text === tag);
}

/* hasModifier: the node has the modifier of this kind */
function hasModifier(node, kind) {
  return (node.modifiers ?? []).some((m) => m.kind === kind);
}
