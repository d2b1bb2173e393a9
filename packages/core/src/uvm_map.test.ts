import { describe, expect, it } from 'vitest';
import {
  expectError,
  expectErrorSync,
  frameAt,
  pattern,
  readOnlyFile,
  useTmpDir,
  writeFileOf,
} from '../test/helpers.js';
import { Inherit, Kernel, PAGE_SIZE, Prot, VM_MAX_ADDRESS, VM_MIN_ADDRESS } from './index.js';
import type { Proc } from './proc.js';

const RW = Prot.READ | Prot.WRITE;

function ranges(p: Proc): [number, number, number][] {
  return p.map.entries.map((e) => [e.start, e.end, e.prot]);
}

describe('mmap', () => {
  it('returns page-aligned, non-overlapping ranges from the bottom of user space', () => {
    const k = new Kernel({ physPages: 16, swapPages: 0 });
    const p = k.createProcess();
    const a = p.mmap(1);
    const b = p.mmap(PAGE_SIZE + 1);
    const c = p.mmap(PAGE_SIZE);
    expect(a).toBe(VM_MIN_ADDRESS);
    expect(b).toBe(a + PAGE_SIZE);
    expect(c).toBe(b + 2 * PAGE_SIZE);
    expect(ranges(p)).toEqual([
      [a, a + PAGE_SIZE, RW],
      [b, b + 2 * PAGE_SIZE, RW],
      [c, c + PAGE_SIZE, RW],
    ]);
    expect(p.map.size).toBe(4 * PAGE_SIZE);
    expect(k.stats().freePages).toBe(16);
  });

  it('reuses the lowest hole big enough', () => {
    const k = new Kernel({ physPages: 16, swapPages: 0 });
    const p = k.createProcess();
    const a = p.mmap(2 * PAGE_SIZE);
    const b = p.mmap(PAGE_SIZE);
    p.munmap(a, 2 * PAGE_SIZE);
    expect(p.mmap(3 * PAGE_SIZE)).toBe(b + PAGE_SIZE);
    expect(p.mmap(PAGE_SIZE)).toBe(a);
    expect(p.mmap(PAGE_SIZE)).toBe(a + PAGE_SIZE);
  });

  it('runs out of address space with ENOMEM, allocating no page', () => {
    const k = new Kernel({ physPages: 8, swapPages: 0 });
    const p = k.createProcess();
    p.mmap(VM_MAX_ADDRESS - VM_MIN_ADDRESS - PAGE_SIZE);
    p.mmap(PAGE_SIZE);
    expectErrorSync(() => p.mmap(1), 'ENOMEM');
    expect(p.map.entries).toHaveLength(2);
    expect(k.stats().freePages).toBe(8);
    k.checkInvariants();
  });

  it('bumps the map version on every change', () => {
    const k = new Kernel({ physPages: 8, swapPages: 0 });
    const p = k.createProcess();
    let v = p.map.version;
    const va = p.mmap(2 * PAGE_SIZE);
    expect(p.map.version).toBeGreaterThan(v);
    v = p.map.version;
    p.mprotect(va, PAGE_SIZE, Prot.READ);
    expect(p.map.version).toBeGreaterThan(v);
    v = p.map.version;
    p.munmap(va, PAGE_SIZE);
    expect(p.map.version).toBeGreaterThan(v);
  });
});

describe('munmap', () => {
  it('of a middle page splits the entry, frees that page, and keeps the others', async () => {
    const k = new Kernel({ physPages: 16, swapPages: 0 });
    const p = k.createProcess();
    const va = p.mmap(3 * PAGE_SIZE);
    const data = pattern(3 * PAGE_SIZE, 1);
    await p.write(va, data);
    expect(k.stats().freePages).toBe(13);
    p.munmap(va + PAGE_SIZE, PAGE_SIZE);
    expect(ranges(p)).toEqual([
      [va, va + PAGE_SIZE, RW],
      [va + 2 * PAGE_SIZE, va + 3 * PAGE_SIZE, RW],
    ]);
    expect(k.stats().freePages).toBe(14);
    expect(k.stats().anons).toBe(2);
    /* both halves still use the one amap, at their own slots */
    const [e1, e2] = p.map.entries;
    expect(e1.amap).toBe(e2.amap);
    expect(e2.amapSlot - e1.amapSlot).toBe(2);
    expect(e1.amap?.ref).toBe(2);
    expect((await p.read(va, PAGE_SIZE)).equals(data.subarray(0, PAGE_SIZE))).toBe(true);
    expect((await p.read(va + 2 * PAGE_SIZE, PAGE_SIZE)).equals(data.subarray(2 * PAGE_SIZE))).toBe(true);
    await expectError(p.read(va + PAGE_SIZE, 1), 'EFAULT');
    await expectError(p.write(va + PAGE_SIZE - 1, Buffer.from('ab')), 'EFAULT');
    k.checkInvariants();
  });

  it('across several entries and holes removes exactly the range', async () => {
    const k = new Kernel({ physPages: 16, swapPages: 0 });
    const p = k.createProcess();
    const a = p.mmap(2 * PAGE_SIZE);
    const b = p.mmap(2 * PAGE_SIZE);
    await p.write(a, pattern(4 * PAGE_SIZE, 2));
    p.munmap(a + PAGE_SIZE, 2 * PAGE_SIZE);
    expect(ranges(p)).toEqual([
      [a, a + PAGE_SIZE, RW],
      [b + PAGE_SIZE, b + 2 * PAGE_SIZE, RW],
    ]);
    expect(k.stats().freePages).toBe(14);
    /* an unmapped range is fine, and changes nothing */
    p.munmap(a + PAGE_SIZE, 10 * PAGE_SIZE);
    p.munmap(0x2000_0000, PAGE_SIZE);
    expect(ranges(p)).toEqual([[a, a + PAGE_SIZE, RW]]);
    expect(k.stats().freePages).toBe(15);
    expect(k.uvm.amaps).toBe(1);
    p.munmap(a, 1);
    expect(p.map.entries).toHaveLength(0);
    expect(k.stats().freePages).toBe(16);
    expect(k.uvm.amaps).toBe(0);
    k.checkInvariants();
  });

  it('rounds the length up to whole pages', async () => {
    const k = new Kernel({ physPages: 16, swapPages: 0 });
    const p = k.createProcess();
    const va = p.mmap(3 * PAGE_SIZE);
    p.munmap(va, PAGE_SIZE + 1);
    expect(ranges(p)).toEqual([[va + 2 * PAGE_SIZE, va + 3 * PAGE_SIZE, RW]]);
  });
});

describe('mprotect', () => {
  it('of a middle page clips the entry, and the protection is enforced per page', async () => {
    const k = new Kernel({ physPages: 16, swapPages: 0 });
    const p = k.createProcess();
    const va = p.mmap(3 * PAGE_SIZE);
    await p.write(va, pattern(3 * PAGE_SIZE, 3));
    p.mprotect(va + PAGE_SIZE, PAGE_SIZE, Prot.READ);
    expect(ranges(p)).toEqual([
      [va, va + PAGE_SIZE, RW],
      [va + PAGE_SIZE, va + 2 * PAGE_SIZE, Prot.READ],
      [va + 2 * PAGE_SIZE, va + 3 * PAGE_SIZE, RW],
    ]);
    expect(p.map.pmap.protAt((va + PAGE_SIZE) / PAGE_SIZE)).toBe(Prot.READ);
    await expectError(p.write(va + PAGE_SIZE + 5, Buffer.from('x')), 'EFAULT');
    await p.write(va, Buffer.from('ok'));
    await p.write(va + 2 * PAGE_SIZE, Buffer.from('ok'));
    expect(
      (await p.read(va + PAGE_SIZE, 10)).equals(
        pattern(3 * PAGE_SIZE, 3).subarray(PAGE_SIZE, PAGE_SIZE + 10),
      ),
    ).toBe(true);
    p.mprotect(va, 3 * PAGE_SIZE, RW);
    await p.write(va + PAGE_SIZE + 5, Buffer.from('x'));
    expect((await p.read(va + PAGE_SIZE + 5, 1)).toString()).toBe('x');
    expect(k.stats().freePages).toBe(13);
    k.checkInvariants();
  });

  it('NONE removes the mappings but keeps the data for when access comes back', async () => {
    const k = new Kernel({ physPages: 16, swapPages: 0 });
    const p = k.createProcess();
    const va = p.mmap(2 * PAGE_SIZE);
    await p.write(va, Buffer.from('kept'));
    p.mprotect(va, 2 * PAGE_SIZE, Prot.NONE);
    expect(p.map.pmap.resident).toBe(0);
    await expectError(p.read(va, 1), 'EFAULT');
    await expectError(p.write(va, Buffer.from('x')), 'EFAULT');
    expect(k.stats().freePages).toBe(15);
    p.mprotect(va, PAGE_SIZE, Prot.READ);
    expect((await p.read(va, 4)).toString()).toBe('kept');
    await expectError(p.write(va, Buffer.from('x')), 'EFAULT');
    k.checkInvariants();
  });

  it('of a range with a hole fails with ENOMEM and changes nothing', () => {
    const k = new Kernel({ physPages: 16, swapPages: 0 });
    const p = k.createProcess();
    const a = p.mmap(PAGE_SIZE);
    const b = p.mmap(PAGE_SIZE);
    const c = p.mmap(PAGE_SIZE);
    p.munmap(b, PAGE_SIZE);
    const before = ranges(p);
    const v = p.map.version;
    expectErrorSync(() => p.mprotect(a, 3 * PAGE_SIZE, Prot.READ), 'ENOMEM');
    expectErrorSync(() => p.mprotect(b, PAGE_SIZE, Prot.READ), 'ENOMEM');
    expectErrorSync(() => p.mprotect(c, 2 * PAGE_SIZE, Prot.READ), 'ENOMEM');
    expectErrorSync(() => p.mprotect(c + 5 * PAGE_SIZE, PAGE_SIZE, Prot.READ), 'ENOMEM');
    expect(ranges(p)).toEqual(before);
    expect(p.map.version).toBe(v);
  });

  it('of a private anonymous range may grant anything (maxProt ALL)', async () => {
    const k = new Kernel({ physPages: 8, swapPages: 0 });
    const p = k.createProcess();
    const va = p.mmap(PAGE_SIZE, { prot: Prot.READ });
    await expectError(p.write(va, Buffer.from('x')), 'EFAULT');
    p.mprotect(va, PAGE_SIZE, Prot.ALL);
    await p.write(va, Buffer.from('x'));
    expect((await p.read(va, 1)).toString()).toBe('x');
  });
});

describe('mprotect beyond maxProt', () => {
  const tmp = useTmpDir();

  it('a shared mapping of a read-only file refuses WRITE with EACCES', async () => {
    const k = new Kernel({ physPages: 16, swapPages: 0 });
    const p = k.createProcess();
    const file = await readOnlyFile(tmp.dir);
    const va = await p.mmapFile(file, { shared: true, length: 2 * PAGE_SIZE });
    expect(p.map.entries[0].maxProt).toBe(Prot.READ | Prot.EXEC);
    expectErrorSync(() => p.mprotect(va, PAGE_SIZE, RW), 'EACCES');
    expect(p.map.entries).toHaveLength(1);
    expect(p.map.entries[0].prot).toBe(Prot.READ);
    p.mprotect(va, PAGE_SIZE, Prot.READ | Prot.EXEC);
    p.mprotect(va, PAGE_SIZE, Prot.NONE);
    p.exit();
    await k.idle();
    expect(k.stats().freePages).toBe(16);
  });

  it('an unmapped range after such a mapping is ENOMEM, not EACCES', async () => {
    const k = new Kernel({ physPages: 16, swapPages: 0 });
    const p = k.createProcess();
    const file = await readOnlyFile(tmp.dir);
    const va = await p.mmapFile(file, { shared: true, length: PAGE_SIZE });
    expectErrorSync(() => p.mprotect(va + 16 * PAGE_SIZE, PAGE_SIZE, RW), 'ENOMEM');
    p.exit();
    await k.idle();
  });

  it('a private mapping of the same file may become writable (copy-on-write)', async () => {
    const k = new Kernel({ physPages: 16, swapPages: 0 });
    const p = k.createProcess();
    const file = await writeFileOf(tmp.dir, 'f', 2 * PAGE_SIZE, 4);
    const va = await p.mmapFile(file);
    expect(p.map.entries[0].maxProt).toBe(Prot.ALL);
    p.mprotect(va, PAGE_SIZE, RW);
    await p.write(va, Buffer.from('private'));
    expect((await p.read(va, 7)).toString()).toBe('private');
    p.exit();
    await k.idle();
    expect(k.stats().freePages).toBe(16);
  });
});

describe('fork and needs-copy', () => {
  it('COPY entries become needs-copy in both maps and the parent loses write access', async () => {
    const k = new Kernel({ physPages: 16, swapPages: 0 });
    const p = k.createProcess();
    const va = p.mmap(2 * PAGE_SIZE);
    await p.write(va, pattern(2 * PAGE_SIZE, 5));
    expect(p.map.pmap.protAt(va / PAGE_SIZE)).toBe(RW);
    const c = p.fork();
    expect(p.map.entries[0].needsCopy).toBe(true);
    expect(c.map.entries[0].needsCopy).toBe(true);
    expect(c.map.entries[0].amap).toBe(p.map.entries[0].amap);
    expect(p.map.entries[0].amap?.ref).toBe(2);
    expect(p.map.pmap.protAt(va / PAGE_SIZE)).toBe(Prot.READ);
    expect(c.map.pmap.resident).toBe(0);
    k.checkInvariants();

    await p.write(va, Buffer.from('p'));
    expect(p.map.entries[0].needsCopy).toBe(false);
    expect(p.map.entries[0].amap).not.toBe(c.map.entries[0].amap);
    expect(c.map.entries[0].amap?.ref).toBe(1);
    expect(c.map.entries[0].needsCopy).toBe(true);
    await c.write(va + PAGE_SIZE, Buffer.from('c'));
    expect(c.map.entries[0].needsCopy).toBe(false);
    k.checkInvariants();
  });

  it('SHARE entries share one amap and stay writable; NONE entries are not inherited', async () => {
    const k = new Kernel({ physPages: 16, swapPages: 0 });
    const p = k.createProcess();
    const shared = p.mmap(PAGE_SIZE, { inherit: Inherit.SHARE });
    const none = p.mmap(PAGE_SIZE, { inherit: Inherit.NONE });
    await p.write(shared, Buffer.from('s'));
    await p.write(none, Buffer.from('n'));
    const c = p.fork();
    expect(c.map.entries).toHaveLength(1);
    expect(c.map.entries[0].start).toBe(shared);
    expect(c.map.entries[0].needsCopy).toBe(false);
    expect(c.map.entries[0].amap).toBe(p.map.entries[0].amap);
    expect(p.map.pmap.protAt(shared / PAGE_SIZE)).toBe(RW);
    await expectError(c.read(none, 1), 'EFAULT');
    await c.write(shared, Buffer.from('C'));
    expect((await p.read(shared, 1)).toString()).toBe('C');
    expect(frameAt(c, shared)).toBe(frameAt(p, shared));
    k.checkInvariants();
  });

  it('a SHARE entry forked before it was ever touched still shares its pages', async () => {
    const k = new Kernel({ physPages: 16, swapPages: 0 });
    const p = k.createProcess();
    const va = p.mmap(PAGE_SIZE, { inherit: Inherit.SHARE });
    const c = p.fork();
    await c.write(va, Buffer.from('late'));
    expect((await p.read(va, 4)).toString()).toBe('late');
    k.checkInvariants();
  });
});
