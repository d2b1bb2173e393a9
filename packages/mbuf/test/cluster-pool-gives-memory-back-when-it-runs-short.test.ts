/*
 * The cluster pool keeps the wired pages it grew by, so later copies don't have to allocate -- but not
 * at the cost of user memory. A copy that fails for want of memory (ENOMEM) gives back the pages it
 * made the pool grow by (and any other idle page), and the pagedaemon takes back the idle pages of the
 * pool (a reclaim hook) whenever it needs memory; either way a user fault that follows finds memory.
 */
import { Kernel, PAGE_SIZE } from '@loanout/core';
import { describe, expect, it } from 'vitest';
import { mbufCopyin, mbufStats, mFreem } from '../src/index.js';
import { expectError, pattern, userMemory } from './helpers.js';

/* a 64-page kernel with the default mbuf setup, most of its memory resident in one process */
async function crowded(resident: number) {
  const k = new Kernel({ physPages: 64, swapPages: 0 });
  await userMemory(k.createProcess(), resident, 81);
  const q = k.createProcess();
  const qva = q.mmap(16 * PAGE_SIZE);
  return { k, q, qva };
}

function memory(k: Kernel) {
  const s = k.stats();
  return { wired: s.wiredPages, free: s.freePages, poolPages: mbufStats(k).clusterPoolPages };
}

describe('the cluster pool gives memory back when it runs short', () => {
  it('a copy that fails with ENOMEM leaves wired and free pages as they were; a user fault then succeeds', async () => {
    const { k, q, qva } = await crowded(56);
    const before = memory(k);
    expect(before.free).toBeGreaterThan(0);
    await expectError(mbufCopyin(q, qva, 16 * PAGE_SIZE), 'ENOMEM');
    expect(memory(k)).toEqual({ ...before, poolPages: 0 });
    expect(mbufStats(k).clustersInUse).toBe(0);
    k.checkInvariants();
    await q.write(qva, pattern(PAGE_SIZE, 82));
    expect((await q.read(qva, PAGE_SIZE)).equals(pattern(PAGE_SIZE, 82))).toBe(true);
    k.checkInvariants();
  });

  it('after the failure the pool still works: a copy that fits in memory succeeds', async () => {
    const { k, q, qva } = await crowded(56);
    await q.write(qva, pattern(16 * PAGE_SIZE, 83).subarray(0, 2 * PAGE_SIZE));
    await expectError(mbufCopyin(q, qva, 16 * PAGE_SIZE), 'ENOMEM');
    const m = await mbufCopyin(q, qva, 2 * PAGE_SIZE);
    expect(mbufStats(k).clustersInUse).toBe(4);
    mFreem(m);
    k.checkInvariants();
  });

  it('clusters freed while memory is short stay pooled until the pagedaemon needs their pages', async () => {
    const { k, q, qva } = await crowded(40);
    await q.write(qva, pattern(4 * PAGE_SIZE, 84));
    const m = await mbufCopyin(q, qva, 4 * PAGE_SIZE);
    expect(mbufStats(k).clusterPoolPages).toBe(4);
    /* use up what is left, down to one free page: memory is short */
    const p = k.createProcess();
    await userMemory(p, k.stats().freePages - 1, 85);
    expect(k.stats().freePages).toBeLessThan(k.uvm.freeTarget);
    mFreem(m);
    expect(memory(k).poolPages).toBe(4);
    /* a user fault that needs more than is free: the pagedaemon takes the pool's four (no swap here) */
    await userMemory(p, 4, 86);
    expect(memory(k).poolPages).toBe(0);
    k.checkInvariants();
  });

  it('the pagedaemon takes back the idle pages of a pool that grew while memory was plentiful', async () => {
    const { k, q, qva } = await crowded(8);
    await q.write(qva, pattern(16 * PAGE_SIZE, 88));
    mFreem(await mbufCopyin(q, qva, 16 * PAGE_SIZE));
    expect(memory(k).poolPages).toBe(16);
    /* the rest of memory, and then the pool's 16 pages too, for user pages (no swap): only the
       pagedaemon's reclaim hook can find them */
    const p = k.createProcess();
    await userMemory(p, k.stats().freePages + 16, 89);
    expect(memory(k).poolPages).toBe(0);
    expect(k.stats().freePages).toBe(0);
    k.checkInvariants();
    /* and the pool still works once memory is back */
    p.exit();
    mFreem(await mbufCopyin(q, qva, 2 * PAGE_SIZE));
    k.checkInvariants();
  });

  it('with memory to spare, freed clusters stay in the pool for the next copy (no page churn)', async () => {
    const { k, q, qva } = await crowded(8);
    await q.write(qva, pattern(4 * PAGE_SIZE, 87));
    mFreem(await mbufCopyin(q, qva, 4 * PAGE_SIZE));
    const before = memory(k);
    expect(before.poolPages).toBe(4);
    mFreem(await mbufCopyin(q, qva, 4 * PAGE_SIZE));
    expect(memory(k)).toEqual(before);
    k.checkInvariants();
  });
});
