import { describe, expect, it } from 'vitest';
import { expectErrorSync, expectPanic } from '../test/helpers.js';
import { Kernel, PAGE_SIZE, Prot, VM_MIN_KERNEL_ADDRESS } from './index.js';
import { PhysMem } from './physmem.js';
import { Mmu } from './pmap.js';
import { KERNEL_VA_PAGES, KernelVa } from './uvm_km.js';

function kva(): KernelVa {
  return new KernelVa(new Mmu(new PhysMem(4)).kernelPmap);
}

describe('KernelVa.alloc / free', () => {
  it('hands out page-aligned, non-overlapping ranges from the bottom of kernel space', () => {
    const v = kva();
    const a = v.alloc(2);
    const b = v.alloc(1);
    const c = v.alloc(3);
    expect(a).toBe(VM_MIN_KERNEL_ADDRESS);
    expect(b).toBe(a + 2 * PAGE_SIZE);
    expect(c).toBe(b + PAGE_SIZE);
    expect(v.allocated).toBe(6);
  });

  it('is first fit: a freed range is reused by the next allocation that fits', () => {
    const v = kva();
    const a = v.alloc(2);
    const b = v.alloc(3);
    const c = v.alloc(1);
    v.free(b, 3);
    expect(v.allocated).toBe(3);
    expect(v.alloc(4)).toBe(c + PAGE_SIZE);
    expect(v.alloc(2)).toBe(b);
    expect(v.alloc(1)).toBe(b + 2 * PAGE_SIZE);
    expect(v.alloc(1)).toBe(c + 5 * PAGE_SIZE);
    v.free(a, 2);
    expect(v.alloc(2)).toBe(a);
  });

  it('coalesces freed neighbours back into one extent, whatever the order', () => {
    const v = kva();
    const ranges = [v.alloc(1), v.alloc(2), v.alloc(1), v.alloc(3)];
    const sizes = [1, 2, 1, 3];
    for (const i of [2, 0, 3, 1]) v.free(ranges[i], sizes[i]);
    expect(v.allocated).toBe(0);
    /* all of kernel space in one piece again */
    expect(v.alloc(KERNEL_VA_PAGES)).toBe(VM_MIN_KERNEL_ADDRESS);
    expectErrorSync(() => v.alloc(1), 'ENOMEM');
  });

  it('runs out with ENOMEM and changes nothing', () => {
    const v = kva();
    expectErrorSync(() => v.alloc(KERNEL_VA_PAGES + 1), 'ENOMEM');
    expect(v.allocated).toBe(0);
    expect(v.alloc(1)).toBe(VM_MIN_KERNEL_ADDRESS);
  });

  it('panics on a double free or a free of space never allocated', () => {
    const v = kva();
    const a = v.alloc(2);
    v.alloc(1);
    v.free(a, 2);
    expectPanic(() => v.free(a, 2), /already free/);
    expectPanic(() => v.free(a + PAGE_SIZE, 1), /already free/);
    expectPanic(() => v.free(VM_MIN_KERNEL_ADDRESS + 100 * PAGE_SIZE, 1), /already free/);
  });

  it.each([0, -1, 1.5, Number.NaN, Number.POSITIVE_INFINITY])(
    'refuses to allocate %s pages (EINVAL)',
    (n) => {
      const v = kva();
      expectErrorSync(() => v.alloc(n), 'EINVAL');
      expect(v.allocated).toBe(0);
      expect(v.alloc(1)).toBe(VM_MIN_KERNEL_ADDRESS);
    },
  );

  it.each([
    ['an unaligned address', VM_MIN_KERNEL_ADDRESS + 1, 1],
    ['a NaN address', Number.NaN, 1],
    ['zero pages', VM_MIN_KERNEL_ADDRESS, 0],
    ['a fractional page count', VM_MIN_KERNEL_ADDRESS, 0.5],
  ])('refuses to free %s (EINVAL) and keeps the range allocated', (_what, va, n) => {
    const v = kva();
    v.alloc(1);
    expectErrorSync(() => v.free(va, n), 'EINVAL');
    expect(v.allocated).toBe(1);
    expect(v.alloc(1)).toBe(VM_MIN_KERNEL_ADDRESS + PAGE_SIZE);
  });
});

describe('KernelVa.access', () => {
  it('translates a mapped address and panics on faults', () => {
    const m = new Mmu(new PhysMem(4));
    const v = new KernelVa(m.kernelPmap);
    const va = v.alloc(2);
    m.kernelPmap.kenter(va / PAGE_SIZE, 3, Prot.READ);
    m.kernelPmap.kenter(va / PAGE_SIZE + 1, 1, Prot.READ | Prot.WRITE);
    expect(v.access(va + 10, false)).toBe(3);
    expect(v.access(va + PAGE_SIZE + 10, true)).toBe(1);
    expectPanic(() => v.access(va + 10, true), /read-only/);
    expectPanic(() => v.access(va + 2 * PAGE_SIZE, false), /not mapped/);
  });

  it('prints kernel addresses (above 2^31) as NetBSD does, never as negative 32-bit numbers', () => {
    const m = new Mmu(new PhysMem(4));
    const v = new KernelVa(m.kernelPmap);
    const va = v.alloc(1);
    expect(va).toBe(0x8000_0000);
    m.kernelPmap.kenter(va / PAGE_SIZE, 3, Prot.READ);
    expectPanic(() => v.access(va + 10, true), /read-only \(loaned\?\) page at 0x80000000$/);
    expectPanic(() => v.access(va + PAGE_SIZE + 1, false), /0x80001001 is not mapped/);
  });
});

describe('kernel va through the Kernel', () => {
  it('counts allocated kernel pages in stats', () => {
    const k = new Kernel({ physPages: 4, swapPages: 0 });
    expect(k.stats().kernelVaPages).toBe(0);
    const va = k.kva.alloc(5);
    expect(k.stats().kernelVaPages).toBe(5);
    k.kva.free(va, 5);
    expect(k.stats().kernelVaPages).toBe(0);
  });
});
