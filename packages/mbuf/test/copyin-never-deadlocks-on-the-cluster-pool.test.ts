/*
 * mbufCopyin takes all the clusters for a chain at once, waiting in line while the pool is at its
 * limit and holding none while it waits. So two copies that each need most of the pool can't each
 * grab half and wait for the other forever, and one larger than the whole pool is refused at once.
 */
import { Kernel, PAGE_SIZE } from '@loanout/core';
import { describe, expect, it } from 'vitest';
import { type Mbuf, MCLBYTES, mbufCopyin, mbufInit, mbufStats, mFreem } from '../src/index.js';
import { chainBytes, expectError, pattern, settled, userMemory } from './helpers.js';

async function setup(poolPages: number) {
  const k = new Kernel({ physPages: 256, swapPages: 0 });
  mbufInit(k, { maxClusterBytes: poolPages * PAGE_SIZE });
  const p = k.createProcess();
  const va = await userMemory(p, 16, 71);
  return { k, p, va, bytes: pattern(16 * PAGE_SIZE, 71) };
}

describe('the cluster pool never deadlocks copies', () => {
  it('two copies started together, each needing three quarters of the pool, both finish', async () => {
    const { k, p, va, bytes } = await setup(4);
    const a = mbufCopyin(p, va, 6 * MCLBYTES);
    const b = mbufCopyin(p, va + 1, 6 * MCLBYTES);
    const ma = await a;
    expect(await settled(b)).toBe(false);
    expect(mbufStats(k).clustersInUse).toBe(6);
    mFreem(ma);
    const mb = await b;
    expect(chainBytes(mb).equals(bytes.subarray(1, 1 + 6 * MCLBYTES))).toBe(true);
    mFreem(mb);
    expect(mbufStats(k).clustersInUse).toBe(0);
    k.checkInvariants();
  });

  it('many copies at once, of any size up to the whole pool, all finish as chains are freed, in order', async () => {
    const { k, p, va, bytes } = await setup(3);
    const spans: [number, number][] = [];
    for (let i = 0; i < 25; i++)
      spans.push([(i * 3001) % (8 * PAGE_SIZE), 1 + ((i * 5003) % (6 * MCLBYTES))]);
    const copies = spans.map(([off, len]) => mbufCopyin(p, va + off, len));
    for (let i = 0; i < copies.length; i++) {
      const m: Mbuf = await copies[i];
      const [off, len] = spans[i];
      expect(chainBytes(m).equals(bytes.subarray(off, off + len))).toBe(true);
      expect(mbufStats(k).clustersInUse).toBeLessThanOrEqual(6);
      mFreem(m);
    }
    expect(mbufStats(k).clustersInUse).toBe(0);
    expect(mbufStats(k).clusterPoolPages).toBeLessThanOrEqual(3);
    k.checkInvariants();
  });

  it('a copy larger than the whole pool is EINVAL at once, not a wait that never ends', async () => {
    const { k, p, va } = await setup(2);
    await expectError(mbufCopyin(p, va, 4 * MCLBYTES + 1), 'EINVAL');
    expect(mbufStats(k).clustersInUse).toBe(0);
  });

  it('a process that exits while its copy waits for clusters gets ESRCH; its clusters go back', async () => {
    const { k, p, va } = await setup(1);
    const first = await mbufCopyin(p, va, 2 * MCLBYTES);
    const q = k.createProcess();
    const qva = await userMemory(q, 1, 72);
    const waiting = mbufCopyin(q, qva, MCLBYTES);
    expect(await settled(waiting)).toBe(false);
    q.exit();
    mFreem(first);
    await expectError(waiting, 'ESRCH');
    expect(mbufStats(k).clustersInUse).toBe(0);
    k.checkInvariants();
  });
});
