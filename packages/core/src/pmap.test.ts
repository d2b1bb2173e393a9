import { describe, expect, it } from 'vitest';
import { expectErrorSync, expectPanic, frameAt, pattern } from '../test/helpers.js';
import { Kernel, PAGE_SIZE, Prot, type VmPage } from './index.js';
import { PhysMem } from './physmem.js';
import { Mmu, PTE_MOD, PTE_REF } from './pmap.js';

const RW = Prot.READ | Prot.WRITE;

function mmu(npages = 8): Mmu {
  return new Mmu(new PhysMem(npages));
}

describe('Pmap.translate', () => {
  it('faults (-1) on an invalid entry and beyond the table', () => {
    const m = mmu();
    const pm = m.createPmap();
    expect(pm.translate(3, Prot.READ)).toBe(-1);
    expect(pm.translate(1_000_000, Prot.READ)).toBe(-1);
    expect(pm.extract(1_000_000)).toBe(-1);
  });

  it('returns the frame and sets referenced on a read, referenced and modified on a write', () => {
    const m = mmu();
    const pm = m.createPmap();
    pm.enter(10, 4, RW);
    expect(pm.bits[10] & (PTE_REF | PTE_MOD)).toBe(0);
    expect(pm.translate(10, Prot.READ)).toBe(4);
    expect(pm.bits[10] & PTE_REF).toBe(PTE_REF);
    expect(pm.bits[10] & PTE_MOD).toBe(0);
    expect(m.isReferenced(4)).toBe(true);
    expect(m.isModified(4)).toBe(false);
    expect(pm.translate(10, Prot.WRITE)).toBe(4);
    expect(m.isModified(4)).toBe(true);
  });

  it('checks protection: a write through a read-only entry faults and sets no bit', () => {
    const m = mmu();
    const pm = m.createPmap();
    pm.enter(1, 2, Prot.READ);
    expect(pm.translate(1, Prot.WRITE)).toBe(-1);
    expect(pm.bits[1] & (PTE_REF | PTE_MOD)).toBe(0);
    expect(pm.translate(1, Prot.READ | Prot.EXEC)).toBe(-1);
    pm.enter(2, 3, Prot.WRITE);
    expect(pm.translate(2, Prot.READ)).toBe(-1);
    expect(pm.translate(2, Prot.WRITE)).toBe(3);
    pm.enter(5, 6, Prot.NONE);
    expect(pm.translate(5, Prot.READ)).toBe(-1);
  });

  it('clearReference and clearModify reset the bits the pagedaemon reads', () => {
    const m = mmu();
    const a = m.createPmap();
    const b = m.createPmap();
    a.enter(0, 1, RW);
    b.enter(7, 1, RW);
    a.translate(0, Prot.READ);
    b.translate(7, Prot.WRITE);
    expect(m.isReferenced(1)).toBe(true);
    m.clearReference(1);
    expect(m.isReferenced(1)).toBe(false);
    expect(m.isModified(1)).toBe(true);
    m.clearModify(1);
    expect(m.isModified(1)).toBe(false);
  });
});

describe('Pmap.enter / remove / protect', () => {
  it('records each mapping in the frame pv list and counts resident entries', () => {
    const m = mmu();
    const pm = m.createPmap();
    pm.enter(1, 3, RW);
    pm.enter(2, 3, Prot.READ);
    expect(pm.resident).toBe(2);
    expect(
      m
        .mappings(3)
        .map((x) => [x.vpn, x.prot])
        .sort(),
    ).toEqual([
      [1, RW],
      [2, Prot.READ],
    ]);
    expect(m.maxProt(3)).toBe(RW);
  });

  it('re-entering the same frame changes protection without a second pv entry', () => {
    const m = mmu();
    const pm = m.createPmap();
    pm.enter(1, 3, RW);
    pm.enter(1, 3, Prot.READ);
    expect(m.mappings(3)).toHaveLength(1);
    expect(pm.protAt(1)).toBe(Prot.READ);
    expect(pm.resident).toBe(1);
  });

  it('entering a different frame replaces the old mapping and its pv entry', () => {
    const m = mmu();
    const pm = m.createPmap();
    pm.enter(1, 3, RW);
    pm.enter(1, 5, RW);
    expect(m.mappings(3)).toHaveLength(0);
    expect(m.mappings(5)).toHaveLength(1);
    expect(pm.extract(1)).toBe(5);
    expect(pm.resident).toBe(1);
  });

  it('grows its table for high addresses', () => {
    const m = mmu();
    const pm = m.createPmap();
    pm.enter(1, 1, RW);
    pm.enter(100_000, 2, RW);
    expect(pm.translate(100_000, Prot.WRITE)).toBe(2);
    expect(pm.translate(1, Prot.READ)).toBe(1);
  });

  it('remove unmaps a range, drops pv entries, and keeps the modified bit of the frame', () => {
    const m = mmu();
    const pm = m.createPmap();
    pm.enter(1, 1, RW);
    pm.enter(2, 2, RW);
    pm.enter(3, 3, RW);
    pm.translate(2, Prot.WRITE);
    pm.remove(2, 5);
    expect(pm.extract(1)).toBe(1);
    expect(pm.extract(2)).toBe(-1);
    expect(pm.extract(3)).toBe(-1);
    expect(pm.resident).toBe(1);
    expect(m.mappings(2)).toHaveLength(0);
    expect(m.isModified(2)).toBe(true);
    expect(m.isModified(3)).toBe(false);
  });

  it('protect lowers protection over a range; NONE removes the mappings', () => {
    const m = mmu();
    const pm = m.createPmap();
    pm.enter(1, 1, Prot.ALL);
    pm.enter(2, 2, Prot.ALL);
    pm.protect(1, 2, Prot.READ | Prot.EXEC);
    expect(pm.protAt(1)).toBe(Prot.READ | Prot.EXEC);
    expect(pm.protAt(2)).toBe(Prot.READ | Prot.EXEC);
    pm.protect(1, 2, RW);
    expect(pm.protAt(1)).toBe(Prot.READ);
    pm.protect(2, 1, Prot.NONE);
    expect(pm.extract(2)).toBe(-1);
    expect(m.mappings(2)).toHaveLength(0);
    expect(pm.resident).toBe(1);
  });

  it('panics when asked to remove a pv entry that does not exist', () => {
    const m = mmu();
    const pm = m.createPmap();
    expectPanic(() => m.pvRemove(1, pm, 9), /no pv entry/);
  });
});

describe('Mmu.pageProtect', () => {
  it('READ write-protects every mapping of the frame, in every pmap', () => {
    const m = mmu();
    const a = m.createPmap();
    const b = m.createPmap();
    a.enter(1, 4, RW);
    b.enter(9, 4, Prot.ALL);
    a.enter(2, 5, RW);
    m.pageProtect(4, Prot.READ);
    expect(a.translate(1, Prot.WRITE)).toBe(-1);
    expect(b.translate(9, Prot.WRITE)).toBe(-1);
    expect(a.translate(1, Prot.READ)).toBe(4);
    expect(b.protAt(9)).toBe(Prot.READ);
    expect(a.translate(2, Prot.WRITE)).toBe(5);
  });

  it('READ|EXEC keeps execute permission', () => {
    const m = mmu();
    const a = m.createPmap();
    a.enter(1, 4, Prot.ALL);
    m.pageProtect(4, Prot.READ | Prot.EXEC);
    expect(a.protAt(1)).toBe(Prot.READ | Prot.EXEC);
  });

  it('NONE removes every mapping of the frame and remembers it was modified', () => {
    const m = mmu();
    const a = m.createPmap();
    const b = m.createPmap();
    a.enter(1, 4, RW);
    b.enter(2, 4, RW);
    b.enter(3, 6, RW);
    b.translate(2, Prot.WRITE);
    m.pageProtect(4, Prot.NONE);
    expect(a.extract(1)).toBe(-1);
    expect(b.extract(2)).toBe(-1);
    expect(m.pv[4]).toBeNull();
    expect(a.resident).toBe(0);
    expect(b.resident).toBe(1);
    expect(m.isModified(4)).toBe(true);
    m.clearModify(4);
    expect(m.isModified(4)).toBe(false);
    expect(b.extract(3)).toBe(6);
  });
});

describe('kernel pmap', () => {
  it('refuses managed enter, and user pmaps refuse kenter/kremove', () => {
    const m = mmu();
    expectPanic(() => m.kernelPmap.enter(1, 1, Prot.READ), /kenter/);
    const pm = m.createPmap();
    expectPanic(() => pm.kenter(1, 1, Prot.READ), /not the kernel pmap/);
    expectPanic(() => pm.kremove(1, 1), /not the kernel pmap/);
  });

  it('kenter makes unmanaged mappings that pageProtect does not touch', () => {
    const m = mmu();
    const k = m.kernelPmap;
    const u = m.createPmap();
    k.kenter(500, 2, RW);
    u.enter(1, 2, RW);
    expect(m.mappings(2)).toHaveLength(1);
    m.pageProtect(2, Prot.NONE);
    expect(u.extract(1)).toBe(-1);
    expect(k.translate(500, Prot.WRITE)).toBe(2);
    expectPanic(() => k.kenter(500, 3, Prot.READ), /already mapped/);
    k.kremove(500, 1);
    expect(k.extract(500)).toBe(-1);
    expect(k.resident).toBe(0);
  });
});

describe('Kernel kenter / kread / kwrite', () => {
  it('reads a user page through a read-only kernel mapping, and a kernel write to it panics', async () => {
    const k = new Kernel({ physPages: 16, swapPages: 0 });
    const p = k.createProcess();
    const va = p.mmap(2 * PAGE_SIZE);
    const data = pattern(2 * PAGE_SIZE, 7);
    await p.write(va, data);
    const pages = [k.uvm.pages[frameAt(p, va)], k.uvm.pages[frameAt(p, va + PAGE_SIZE)]];
    const kva = k.kva.alloc(2);
    k.kenter(kva, pages);
    expect(Buffer.compare(k.kread(kva, 2 * PAGE_SIZE), data)).toBe(0);
    expect(k.kread(kva + PAGE_SIZE - 3, 6).equals(data.subarray(PAGE_SIZE - 3, PAGE_SIZE + 3))).toBe(true);
    expectPanic(() => k.kwrite(kva + 5, Buffer.from('x')), /read-only/);
    expect((await p.read(va + 5, 1))[0]).toBe(data[5]);
    k.kremove(kva, 2);
    k.kva.free(kva, 2);
    k.checkInvariants();
  });

  it('writes through a read-write kernel mapping land in the user page', async () => {
    const k = new Kernel({ physPages: 16, swapPages: 0 });
    const p = k.createProcess();
    const va = p.mmap(PAGE_SIZE);
    await p.write(va, Buffer.from([1]));
    const kva = k.kva.alloc(1);
    k.kenter(kva, [k.uvm.pages[frameAt(p, va)]], RW);
    k.kwrite(kva + 4090, Buffer.from('kernel'));
    expect((await p.read(va + 4090, 6)).toString()).toBe('kernel');
    k.kremove(kva, 1);
    k.kva.free(kva, 1);
  });

  it('refuses bad arguments with EINVAL and maps nothing', () => {
    const k = new Kernel({ physPages: 4, swapPages: 0 });
    const kva = k.kva.alloc(2);
    const pg = k.uvm.pages[1];
    const kpmap = k.uvm.mmu.kernelPmap;
    expectErrorSync(() => k.kenter(kva + 1, [pg]), 'EINVAL');
    expectErrorSync(() => k.kenter(Number.NaN, [pg]), 'EINVAL');
    expectErrorSync(() => k.kenter(kva, [pg], 8), 'EINVAL');
    expectErrorSync(() => k.kenter(kva, [pg, { frame: 2 } as unknown as VmPage]), 'EINVAL');
    expectErrorSync(() => k.kenter(kva, 'pages' as unknown as VmPage[]), 'EINVAL');
    expect(kpmap.resident).toBe(0);
    k.kenter(kva, [pg], Prot.READ);
    expectErrorSync(() => k.kremove(kva + 10, 1), 'EINVAL');
    expectErrorSync(() => k.kremove(kva, -1), 'EINVAL');
    expectErrorSync(() => k.kremove(kva, 0.5), 'EINVAL');
    expect(kpmap.resident).toBe(1);
    expectErrorSync(() => k.kread(kva, -1), 'EINVAL');
    expectErrorSync(() => k.kread(kva, Number.NaN), 'EINVAL');
    expectErrorSync(() => k.kread(-1, 1), 'EINVAL');
    expectErrorSync(() => k.kwrite(kva, 'x' as unknown as Uint8Array), 'EINVAL');
    expectErrorSync(() => k.kwrite(Number.NaN, Buffer.from('x')), 'EINVAL');
    expect(k.kread(kva, 0)).toHaveLength(0);
    k.kremove(kva, 0);
    expect(kpmap.resident).toBe(1);
    k.kremove(kva, 2);
    expect(kpmap.resident).toBe(0);
  });

  it('a kernel access to an unmapped kernel address panics', () => {
    const k = new Kernel({ physPages: 4, swapPages: 0 });
    const kva = k.kva.alloc(1);
    expectPanic(() => k.kread(kva, 1), /not mapped/);
    expectPanic(() => k.kwrite(kva, Buffer.from('x')), /not mapped/);
    k.kenter(kva, [k.uvm.pages[0]], Prot.READ);
    k.kremove(kva, 1);
    expectPanic(() => k.kread(kva, 1), /not mapped/);
  });
});
