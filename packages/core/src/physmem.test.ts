import { describe, expect, it } from 'vitest';
import { expectErrorSync, frameAt, pattern } from '../test/helpers.js';
import { Kernel, MAX_PHYS_PAGES, PAGE_SIZE } from './index.js';
import { PhysMem } from './physmem.js';

describe('PhysMem', () => {
  it('is one ArrayBuffer of npages pages', () => {
    const ram = new PhysMem(5);
    expect(ram.npages).toBe(5);
    expect(ram.buffer.byteLength).toBe(5 * PAGE_SIZE);
    expect(ram.bytes.buffer).toBe(ram.buffer);
    expect(ram.bytes.length).toBe(5 * PAGE_SIZE);
  });

  it('gives each frame a cached view that shares RAM', () => {
    const ram = new PhysMem(4);
    for (let f = 0; f < 4; f++) {
      const v = ram.frame(f);
      expect(v.buffer).toBe(ram.buffer);
      expect(v.byteOffset).toBe(f * PAGE_SIZE);
      expect(v.length).toBe(PAGE_SIZE);
      expect(ram.frame(f)).toBe(v);
    }
    ram.frame(2)[10] = 0xab;
    expect(ram.bytes[2 * PAGE_SIZE + 10]).toBe(0xab);
    ram.bytes[3 * PAGE_SIZE] = 0xcd;
    expect(ram.frame(3)[0]).toBe(0xcd);
  });

  it('zeroes one frame and copies one frame to another, touching nothing else', () => {
    const ram = new PhysMem(3);
    ram.bytes.fill(0x11);
    ram.zero(1);
    expect(ram.frame(1).every((b) => b === 0)).toBe(true);
    expect(ram.frame(0).every((b) => b === 0x11)).toBe(true);
    expect(ram.frame(2).every((b) => b === 0x11)).toBe(true);

    ram.frame(0).set(pattern(PAGE_SIZE, 3));
    ram.copy(0, 2);
    expect(Buffer.compare(ram.frame(2), pattern(PAGE_SIZE, 3))).toBe(0);
    expect(ram.frame(1).every((b) => b === 0)).toBe(true);
  });

  it.each([0, -1, 1.5, Number.NaN, Number.POSITIVE_INFINITY, MAX_PHYS_PAGES + 1])(
    'refuses %s pages with EINVAL',
    (n) => {
      expectErrorSync(() => new PhysMem(n), 'EINVAL');
    },
  );

  it('holds the bytes a process writes, in the frame its pmap maps', async () => {
    const k = new Kernel({ physPages: 16, swapPages: 0 });
    const p = k.createProcess();
    const va = p.mmap(PAGE_SIZE);
    await p.write(va + 100, Buffer.from('in ram'));
    const f = frameAt(p, va);
    expect(f).toBeGreaterThanOrEqual(0);
    expect(k.uvm.ram.frame(f).subarray(100, 106).toString()).toBe('in ram');
    expect(k.uvm.pages[f].bytes()).toBe(k.uvm.ram.frame(f));
  });
});
