/*
 * A mapped file is known by its identity (device and inode), not by its path, as a NetBSD vnode is:
 * a file replaced under its path (rename) is a new file for new mappings, while old mappings keep the
 * old one; and a file whose size changed under its mappings (truncated or grown by someone else) is
 * seen at its new size by the next mapping.
 */
import { rename, truncate, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { Kernel, PAGE_SIZE } from '../src/index.js';
import { pattern, settle, useTmpDir, writeFileOf } from './helpers.js';

const P = PAGE_SIZE;

describe('files are known by identity', () => {
  const tmp = useTmpDir();

  it('a file replaced by rename: new mappings get the new file, old mappings keep the old one', async () => {
    const file = await writeFileOf(tmp.dir, 'f', 4 * P, 1);
    const k = new Kernel({ physPages: 64, swapPages: 0 });
    const p = k.createProcess();
    const va = await p.mmapFile(file);
    expect((await p.read(va, P)).equals(pattern(4 * P, 1).subarray(0, P))).toBe(true);
    const next = path.join(tmp.dir, 'f.new');
    await writeFile(next, pattern(2 * P, 2));
    await rename(next, file);
    const q = k.createProcess();
    const qva = await q.mmapFile(file);
    expect(q.map.lookup(qva)!.end - qva).toBe(2 * P);
    expect((await q.read(qva, 2 * P)).equals(pattern(2 * P, 2))).toBe(true);
    /* the old mapping still reads the old file, resident pages and pages read only now alike */
    expect((await p.read(va, 4 * P)).equals(pattern(4 * P, 1))).toBe(true);
    expect(k.uvm.vnodes.size).toBe(2);
    p.exit();
    q.exit();
    await settle(k);
    expect(k.uvm.vnodes.size).toBe(0);
  });

  it('a file truncated or grown by someone else is mapped at its new size', async () => {
    const file = await writeFileOf(tmp.dir, 'g', 4 * P, 3);
    const k = new Kernel({ physPages: 64, swapPages: 0 });
    const p = k.createProcess();
    await p.mmapFile(file);
    await truncate(file, P + 100);
    const q = k.createProcess();
    const qva = await q.mmapFile(file);
    expect(q.map.lookup(qva)!.end - qva).toBe(2 * P);
    const grown = pattern(6 * P, 4);
    await writeFile(file, grown);
    const r = k.createProcess();
    const rva = await r.mmapFile(file);
    expect(r.map.lookup(rva)!.end - rva).toBe(6 * P);
    expect((await r.read(rva, 6 * P)).equals(grown)).toBe(true);
    for (const x of k.processes) x.exit();
    await settle(k);
  });
});
