/*
 * A file cut short while it is mapped never makes the kernel invent bytes. A page past the new end
 * of the file is an error from the pager -- EFAULT to a fault or a loan, as NetBSD's uvn_get fails
 * and the fault is a SIGBUS -- never a page of zeros presented as data. Pages already on loan keep the
 * bytes they had. A dirty page written back after someone else truncated the file does not grow the
 * file back.
 */
import { readFile, stat, truncate } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { Kernel, PAGE_SIZE, Prot, uvmLoan, uvmUnloanPages } from '../src/index.js';
import { expectError, pattern, settle, useTmpDir, writeFileOf } from './helpers.js';

const P = PAGE_SIZE;

describe('truncated files never fabricate bytes', () => {
  const tmp = useTmpDir();

  it('a fault or a loan of a page past the new end of the file is EFAULT, not zeros', async () => {
    const file = await writeFileOf(tmp.dir, 'f', 4 * P, 1);
    const k = new Kernel({ physPages: 64, swapPages: 0 });
    const p = k.createProcess();
    const va = await p.mmapFile(file);
    await truncate(file, P);
    expect((await p.read(va, P)).equals(pattern(4 * P, 1).subarray(0, P))).toBe(true);
    await expectError(p.read(va + 2 * P, 1), 'EFAULT');
    await expectError(uvmLoan(p.map, va, 4 * P, 'kernel'), 'EFAULT');
    await expectError(uvmLoan(p.map, va + 3 * P, P, 'anon'), 'EFAULT');
    k.checkInvariants();
    expect(k.stats()).toMatchObject({ wiredPages: 0, loanedPages: 0, anons: 0 });
    p.exit();
    await settle(k);
  });

  it('a page cut off in the middle of a loan send fails the loan; pages already lent keep their bytes', async () => {
    const data = pattern(4 * P, 2);
    const file = await writeFileOf(tmp.dir, 'g', 4 * P, 2);
    const k = new Kernel({ physPages: 64, swapPages: 0 });
    const p = k.createProcess();
    const va = await p.mmapFile(file);
    const lent = await uvmLoan(p.map, va, 2 * P, 'kernel');
    await truncate(file, P);
    /* the next mapping of the file notices its new size; the object lets go of the pages past it */
    const q = k.createProcess();
    await q.mmapFile(file);
    await expectError(uvmLoan(p.map, va, 4 * P, 'kernel'), 'EFAULT');
    await expectError(p.read(va + P, 1), 'EFAULT');
    expect(lent[0].bytes().equals(data.subarray(0, P))).toBe(true);
    expect(lent[1].bytes().equals(data.subarray(P, 2 * P))).toBe(true);
    k.checkInvariants();
    uvmUnloanPages(lent);
    for (const x of k.processes) x.exit();
    await settle(k);
    expect(k.stats()).toMatchObject({ wiredPages: 0, loanedPages: 0, freePages: 64 });
  });

  it('a dirty page written back after someone else truncated the file does not grow the file back', async () => {
    const file = await writeFileOf(tmp.dir, 'h', 4 * P, 3);
    const k = new Kernel({ physPages: 64, swapPages: 0 });
    const p = k.createProcess();
    const va = await p.mmapFile(file, { prot: Prot.READ | Prot.WRITE, shared: true });
    await p.write(va, Buffer.from('head'));
    await p.write(va + 3 * P, Buffer.from('tail'));
    await truncate(file, P);
    await k.sync();
    expect((await stat(file)).size).toBe(P);
    expect((await readFile(file)).subarray(0, 4).toString()).toBe('head');
    p.exit();
    await settle(k);
    expect((await stat(file)).size).toBe(P);
  });
});
