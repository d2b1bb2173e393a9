import { Kernel, PAGE_SIZE } from '@loanout/core';
import { describe, expect, it } from 'vitest';
import { expectError, userMemory } from '../test/helpers.js';
import { MCLBYTES, mbufCopyin, mbufInit, mbufLoan, mbufStats, mbufSystem, mFreem } from './index.js';
import { MbufSystem } from './mbuf_system.js';

describe('mbufSystem / mbufInit', () => {
  it('is made with the defaults on first use: a 16 MiB loan budget, clusters up to a quarter of RAM', () => {
    const k = new Kernel({ physPages: 1024, swapPages: 0 });
    const sys = mbufSystem(k);
    expect(sys).toBeInstanceOf(MbufSystem);
    expect(mbufSystem(k)).toBe(sys);
    expect(sys.kva.limitPages).toBe((16 * 1024 * 1024) / PAGE_SIZE);
    expect(sys.clusters.maxPages).toBe(256);
    expect(sys.clusters.capacity).toBe((256 * PAGE_SIZE) / MCLBYTES);
    expect(sys.clusters.name).toBe('mclpl');
    expect(sys.clusters.itemSize).toBe(MCLBYTES);
  });

  it('a tiny kernel still gets a cluster pool of at least one page', () => {
    const k = new Kernel({ physPages: 2, swapPages: 0 });
    expect(mbufSystem(k).clusters.maxPages).toBe(1);
  });

  it('mbufInit applies its options, rounding byte counts down to whole pages', () => {
    const k = new Kernel({ physPages: 256, swapPages: 0 });
    const sys = mbufInit(k, { kvaBudgetBytes: 5 * PAGE_SIZE + 100, maxClusterBytes: 3 * PAGE_SIZE });
    expect(mbufSystem(k)).toBe(sys);
    expect(sys.kva.limitPages).toBe(5);
    expect(sys.clusters.maxPages).toBe(3);
    expect(mbufStats(k).kvaBudgetPages).toBe(5);
  });

  it('mbufInit twice is EBUSY, and so is mbufInit after first use; the first system stays', async () => {
    const k = new Kernel({ physPages: 64, swapPages: 0 });
    const sys = mbufInit(k, { kvaBudgetBytes: 8 * PAGE_SIZE });
    await expectError(() => mbufInit(k), 'EBUSY');
    expect(mbufSystem(k)).toBe(sys);
    const k2 = new Kernel({ physPages: 64, swapPages: 0 });
    const p = k2.createProcess();
    mFreem(await mbufCopyin(p, await userMemory(p, 1, 1), 100));
    await expectError(() => mbufInit(k2, { kvaBudgetBytes: 8 * PAGE_SIZE }), 'EBUSY');
    expect(mbufSystem(k2).kva.limitPages).toBe(4096);
  });

  it('bad options are EINVAL and leave the kernel without a system (a good mbufInit still works)', async () => {
    const k = new Kernel({ physPages: 64, swapPages: 0 });
    const bad: unknown[] = [
      { kvaBudgetBytes: 0 },
      { kvaBudgetBytes: PAGE_SIZE - 1 },
      { kvaBudgetBytes: -PAGE_SIZE },
      { kvaBudgetBytes: Number.NaN },
      { kvaBudgetBytes: PAGE_SIZE + 0.5 },
      { kvaBudgetBytes: '65536' },
      { maxClusterBytes: 100 },
      { maxClusterBytes: Number.POSITIVE_INFINITY },
      /* null is a value, not "left out": refused, never the default */
      { kvaBudgetBytes: null },
      { maxClusterBytes: null },
      null,
      42,
      'options',
    ];
    for (const opts of bad) await expectError(() => mbufInit(k, opts as never), 'EINVAL');
    const sys = mbufInit(k, { kvaBudgetBytes: 2 * PAGE_SIZE });
    expect(sys.kva.limitPages).toBe(2);
  });

  it('mbufInit of something that is not a kernel is EINVAL', async () => {
    for (const notKernel of [null, undefined, {}, { uvm: {} }]) {
      await expectError(() => mbufInit(notKernel as never), 'EINVAL');
    }
  });

  it('each kernel has its own system', () => {
    const a = new Kernel({ physPages: 64, swapPages: 0 });
    const b = new Kernel({ physPages: 64, swapPages: 0 });
    mbufInit(a, { kvaBudgetBytes: 4 * PAGE_SIZE });
    expect(mbufSystem(a)).not.toBe(mbufSystem(b));
    expect(mbufStats(b).kvaBudgetPages).toBe(4096);
  });
});

describe('mbufStats', () => {
  it('starts at zero, with no budget before the subsystem is set up', () => {
    const k = new Kernel({ physPages: 64, swapPages: 0 });
    const s = mbufStats(k);
    /* the same counters a set-up system has, every one 0 */
    const live = mbufSystem(new Kernel({ physPages: 8 })).stats();
    expect(Object.keys(s).sort()).toEqual(Object.keys(live).sort());
    for (const [name, v] of Object.entries(s))
      expect([name, v]).toEqual([name, name === 'recvFallbacks' ? {} : 0]);
  });

  it('reading them before first use sets nothing up: a later mbufInit still applies its options', () => {
    const k = new Kernel({ physPages: 64, swapPages: 0 });
    const before = mbufStats(k);
    before.loanChains = 99;
    expect(mbufStats(k).loanChains).toBe(0);
    const sys = mbufInit(k, { kvaBudgetBytes: 8 * PAGE_SIZE });
    expect(mbufSystem(k)).toBe(sys);
    expect(mbufStats(k).kvaBudgetPages).toBe(8);
    expect(k.stats().freePages).toBe(k.stats().physPages);
  });

  it('counts chains and bytes by kind, and what is in use now', async () => {
    const k = new Kernel({ physPages: 256, swapPages: 0 });
    const p = k.createProcess();
    const va = await userMemory(p, 4, 1);
    const loan = await mbufLoan(p, va + 10, 2 * PAGE_SIZE);
    const copy = await mbufCopyin(p, va + 3, 3 * MCLBYTES + 1);
    let s = mbufStats(k);
    expect(s.loanChains).toBe(1);
    expect(s.loanedBytes).toBe(2 * PAGE_SIZE);
    expect(s.kvaPagesInUse).toBe(3);
    expect(s.copyChains).toBe(1);
    expect(s.copiedBytes).toBe(3 * MCLBYTES + 1);
    expect(s.clustersInUse).toBe(4);
    expect(s.clusterPoolPages).toBe(2);
    mFreem(loan);
    mFreem(copy);
    s = mbufStats(k);
    expect(s.kvaPagesInUse).toBe(0);
    expect(s.clustersInUse).toBe(0);
    expect(s.clusterPoolPages).toBe(2);
    expect(s.loanChains).toBe(1);
    expect(s.copyChains).toBe(1);
  });
});
