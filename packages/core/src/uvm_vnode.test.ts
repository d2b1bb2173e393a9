import { mkdir, readFile, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  expectError,
  frameAt,
  mappedFile,
  pattern,
  readOnlyFile,
  settle,
  useTmpDir,
  writeFileOf,
} from '../test/helpers.js';
import { type IoEvent, Kernel, PAGE_SIZE, Prot, VnodeObject } from './index.js';

const RW = Prot.READ | Prot.WRITE;

const tmp = useTmpDir();

describe('the vnode cache', () => {
  it('gives every mapping of one file (by any path) the same vnode object and pages', async () => {
    const file = await writeFileOf(tmp.dir, 'one', 2 * PAGE_SIZE, 1);
    const link = path.join(tmp.dir, 'link');
    await symlink(file, link);
    const k = new Kernel({ physPages: 16, swapPages: 0 });
    const p = k.createProcess();
    const q = k.createProcess();
    const a = await p.mmapFile(file);
    const b = await q.mmapFile(link, { shared: true });
    const c = await p.mmapFile(path.join(tmp.dir, '.', 'one'));
    expect(k.uvm.vnodes.size).toBe(1);
    const vn = [...k.uvm.vnodes.values()][0];
    expect(vn).toBeInstanceOf(VnodeObject);
    expect(vn.ref).toBe(3);
    expect(p.map.entries[0].object).toBe(vn);
    expect(q.map.entries[0].object).toBe(vn);
    await p.read(a, 1);
    await q.read(b, 1);
    await p.read(c, 1);
    expect(frameAt(q, b)).toBe(frameAt(p, a));
    expect(frameAt(p, c)).toBe(frameAt(p, a));
    expect(k.stats().pageins).toBe(1);
    k.checkInvariants();
    p.exit();
    expect(vn.ref).toBe(1);
    expect(k.uvm.vnodes.size).toBe(1);
    q.exit();
    expect(k.uvm.vnodes.size).toBe(0);
    await settle(k);
    expect(k.uvm.objects.has(vn)).toBe(false);
    expect(k.stats().freePages).toBe(16);
  });

  it('clipping a file mapping keeps one reference per entry and drops them all at unmap', async () => {
    const { k, p, va } = await mappedFile(tmp.dir, 'clip', 3 * PAGE_SIZE, 2);
    const vn = p.map.entries[0].object!;
    p.mprotect(va + PAGE_SIZE, PAGE_SIZE, Prot.NONE);
    expect(p.map.entries).toHaveLength(3);
    expect(vn.ref).toBe(3);
    expect(
      (await p.read(va + 2 * PAGE_SIZE, 4)).equals(
        pattern(3 * PAGE_SIZE, 2).subarray(2 * PAGE_SIZE, 2 * PAGE_SIZE + 4),
      ),
    ).toBe(true);
    p.munmap(va, 3 * PAGE_SIZE);
    expect(vn.ref).toBe(0);
    expect(k.uvm.vnodes.size).toBe(0);
    await settle(k);
    expect(k.stats().freePages).toBe(16);
  });

  it('a file mapped again after its last unmap opens a fresh vnode that sees the file', async () => {
    const { file, k, p, va } = await mappedFile(tmp.dir, 'again', PAGE_SIZE, 3);
    const first = p.map.entries[0].object;
    await p.read(va, 1);
    p.munmap(va, PAGE_SIZE);
    await k.idle();
    await writeFile(file, pattern(PAGE_SIZE, 4));
    const vb = await p.mmapFile(file);
    expect(p.map.entries[0].object).not.toBe(first);
    expect((await p.read(vb, PAGE_SIZE)).equals(pattern(PAGE_SIZE, 4))).toBe(true);
    p.exit();
    await settle(k);
  });
});

describe('mmapFile errors', () => {
  it.each([
    ['a missing file', 'ENOENT', async (d: string) => path.join(d, 'missing'), {}],
    ['a missing directory', 'ENOENT', async (d: string) => path.join(d, 'no', 'such'), {}],
    [
      'a directory',
      'EINVAL',
      async (d: string) => {
        const sub = path.join(d, 'sub');
        await mkdir(sub);
        return sub;
      },
      {},
    ],
    ['an empty file', 'EINVAL', async (d: string) => writeFileOf(d, 'empty', 0, 0), {}],
    [
      'an offset at the end',
      'EINVAL',
      async (d: string) => writeFileOf(d, 'f', PAGE_SIZE, 0),
      { offset: PAGE_SIZE },
    ],
    [
      'an offset past the end',
      'EINVAL',
      async (d: string) => writeFileOf(d, 'f', PAGE_SIZE, 0),
      { offset: 8 * PAGE_SIZE },
    ],
    [
      'an unaligned offset',
      'EINVAL',
      async (d: string) => writeFileOf(d, 'f', PAGE_SIZE, 0),
      { offset: 100 },
    ],
    [
      'a negative offset',
      'EINVAL',
      async (d: string) => writeFileOf(d, 'f', PAGE_SIZE, 0),
      { offset: -PAGE_SIZE },
    ],
    ['a zero length', 'EINVAL', async (d: string) => writeFileOf(d, 'f', PAGE_SIZE, 0), { length: 0 }],
    [
      'a NaN length',
      'EINVAL',
      async (d: string) => writeFileOf(d, 'f', PAGE_SIZE, 0),
      { length: Number.NaN },
    ],
    ['bad protection', 'EINVAL', async (d: string) => writeFileOf(d, 'f', PAGE_SIZE, 0), { prot: 8 }],
    ['an empty path', 'EINVAL', async () => '', {}],
  ] as const)('refuses %s with %s and keeps nothing', async (_what, code, make, opts) => {
    const file = await make(tmp.dir);
    const k = new Kernel({ physPages: 8, swapPages: 0 });
    const p = k.createProcess();
    await expectError(p.mmapFile(file, opts), code);
    await settle(k);
    expect(p.map.entries).toHaveLength(0);
    expect(k.uvm.vnodes.size).toBe(0);
    expect(k.stats().freePages).toBe(8);
  });

  it('a read-only file maps shared read-only and private writable, never shared writable', async () => {
    const file = await readOnlyFile(tmp.dir);
    const k = new Kernel({ physPages: 16, swapPages: 0 });
    const p = k.createProcess();
    await expectError(p.mmapFile(file, { prot: RW, shared: true, length: PAGE_SIZE }), 'EACCES');
    const ro = await p.mmapFile(file, { shared: true, length: PAGE_SIZE });
    const vn = p.map.entries[0].object as VnodeObject;
    expect(vn.writable).toBe(false);
    await expectError(p.write(ro, Buffer.from('x')), 'EFAULT');
    const priv = await p.mmapFile(file, { prot: RW, length: PAGE_SIZE });
    const before = await p.read(priv, 16);
    await p.write(priv, Buffer.from('mine'));
    expect((await p.read(priv, 4)).toString()).toBe('mine');
    expect((await p.read(ro, 16)).equals(before)).toBe(true);
    await k.sync();
    p.exit();
    await settle(k);
    expect(k.stats().freePages).toBe(16);
  });

  it('an exited process cannot map a file (ESRCH)', async () => {
    const file = await writeFileOf(tmp.dir, 'f', PAGE_SIZE, 0);
    const k = new Kernel({ physPages: 8, swapPages: 0 });
    const p = k.createProcess();
    p.exit();
    await expectError(p.mmapFile(file), 'ESRCH');
    expect(k.uvm.vnodes.size).toBe(0);
  });

  it('a process that exits while its mmapFile opens the file gets ESRCH and keeps nothing', async () => {
    const file = await writeFileOf(tmp.dir, 'f', PAGE_SIZE, 0);
    const k = new Kernel({ physPages: 8, swapPages: 0 });
    const p = k.createProcess();
    const mapping = p.mmapFile(file);
    p.exit();
    await expectError(mapping, 'ESRCH');
    await settle(k);
    expect(k.uvm.vnodes.size).toBe(0);
    expect([...k.uvm.objects].some((o) => o instanceof VnodeObject)).toBe(false);
  });
});

describe('pager I/O', () => {
  it('reads each page once, reporting it to the io hook', async () => {
    const file = await writeFileOf(tmp.dir, 'io', 2 * PAGE_SIZE, 5);
    const k = new Kernel({ physPages: 16, swapPages: 0 });
    const events: IoEvent[] = [];
    k.setIoHook((ev) => {
      events.push(ev);
    });
    const p = k.createProcess();
    const va = await p.mmapFile(file);
    await p.read(va + PAGE_SIZE, 10);
    await p.read(va + PAGE_SIZE + 10, 10);
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({ kind: 'vnode-read', offset: 1, frame: frameAt(p, va + PAGE_SIZE) });
    expect(events[0].object).toBe(p.map.entries[0].object);
    k.setIoHook(null);
    await p.read(va, 1);
    expect(events).toHaveLength(1);
    p.exit();
    await settle(k);
  });

  it('sync writes back only the dirty pages', async () => {
    const file = await writeFileOf(tmp.dir, 'dirty', 4 * PAGE_SIZE, 6);
    const k = new Kernel({ physPages: 16, swapPages: 0 });
    const writes: number[] = [];
    k.setIoHook((ev) => {
      if (ev.kind === 'vnode-write') writes.push(ev.offset!);
    });
    const p = k.createProcess();
    const va = await p.mmapFile(file, { prot: RW, shared: true });
    await p.read(va, 4 * PAGE_SIZE);
    await k.sync();
    expect(writes).toEqual([]);
    await p.write(va + 2 * PAGE_SIZE, Buffer.from('two'));
    await k.sync();
    expect(writes).toEqual([2]);
    await k.sync();
    expect(writes).toEqual([2]);
    p.exit();
    await settle(k);
    expect(writes).toEqual([2]);
  });

  it('a failed read is EIO and leaves no page behind; the next try succeeds', async () => {
    const { k, p, va } = await mappedFile(tmp.dir, 'eio', PAGE_SIZE, 7, {}, { physPages: 8, swapPages: 0 });
    k.setIoHook((ev) => {
      if (ev.kind === 'vnode-read') throw new Error('disk on fire');
    });
    await expectError(p.read(va, 1), 'EIO');
    expect(k.stats().freePages).toBe(8);
    expect(p.map.entries[0].object?.resident).toBe(0);
    k.checkInvariants();
    k.setIoHook(null);
    expect((await p.read(va, PAGE_SIZE)).equals(pattern(PAGE_SIZE, 7))).toBe(true);
    p.exit();
    await settle(k);
    expect(k.stats().freePages).toBe(8);
  });

  it('a failed write-back keeps the page dirty, and the next sync writes it', async () => {
    const { file, k, p, va } = await mappedFile(
      tmp.dir,
      'ewrite',
      PAGE_SIZE,
      8,
      { prot: RW, shared: true },
      { physPages: 8, swapPages: 0 },
    );
    await p.write(va, Buffer.from('precious'));
    k.setIoHook((ev) => {
      if (ev.kind === 'vnode-write') throw new Error('disk full');
    });
    await expect(k.sync()).rejects.toThrow('disk full');
    k.checkInvariants();
    k.setIoHook(null);
    await k.sync();
    expect((await readFile(file)).subarray(0, 8).toString()).toBe('precious');
    p.exit();
    await settle(k);
  });
});
