import { Kernel, PAGE_SIZE } from '@loanout/core';
import { describe, expect, it } from 'vitest';
import { expectError, expectPanic, settled } from '../test/helpers.js';
import { MCLBYTES } from './index.js';
import { Pool } from './subr_pool.js';

function boot(physPages = 64): Kernel {
  return new Kernel({ physPages, swapPages: 0 });
}

describe('Pool construction', () => {
  it('needs an item size that divides the page and a positive page limit (EINVAL)', async () => {
    const k = boot();
    for (const size of [0, -1, 3000, 1.5, Number.NaN, Symbol('size'), 2048n]) {
      await expectError(() => new Pool(k, 'p', size as number, 1), 'EINVAL');
    }
    for (const max of [0, -1, 2.5, Number.NaN]) {
      await expectError(() => new Pool(k, 'p', MCLBYTES, max), 'EINVAL');
    }
    for (const bad of [null, undefined, {}, { uvm: { pages: [] } }, 'kernel']) {
      await expectError(() => new Pool(bad as never, 'p', MCLBYTES, 1), 'EINVAL');
    }
    for (const bad of [undefined, null, 7, {}]) {
      await expectError(() => new Pool(k, bad as never, MCLBYTES, 1), 'EINVAL');
    }
    const pool = new Pool(k, 'mclpl', MCLBYTES, 3);
    expect(pool.perPage).toBe(2);
    expect(pool.capacity).toBe(6);
    expect(pool.npages).toBe(0);
    expect(k.stats().wiredPages).toBe(0);
  });
});

describe('Pool.get / put', () => {
  it('getSync finds nothing in an empty pool; get grows it by one wired, kernel-mapped page', async () => {
    const k = boot();
    const pool = new Pool(k, 'mclpl', MCLBYTES, 4);
    expect(pool.getSync()).toBe(-1);
    const a = await pool.get();
    expect(pool.npages).toBe(1);
    expect(pool.inUse).toBe(1);
    expect(k.stats().wiredPages).toBe(1);
    expect(k.stats().kernelVaPages).toBe(1);
    const b = pool.getSync();
    expect(b).toBeGreaterThanOrEqual(0);
    expect(b).not.toBe(a);
    expect(Math.floor(a / PAGE_SIZE)).toBe(Math.floor(b / PAGE_SIZE));
    expect(pool.getSync()).toBe(-1);
    k.checkInvariants();
  });

  it("an item's view is RAM at its physical address, and its kernel va maps the same bytes read-write", async () => {
    const k = boot();
    const pool = new Pool(k, 'mclpl', MCLBYTES, 4);
    const a = await pool.get();
    const v = pool.view(a);
    expect(v.buffer).toBe(k.uvm.ram.buffer);
    expect(v.byteOffset).toBe(a);
    expect(v.length).toBe(MCLBYTES);
    expect(v.every((x) => x === 0)).toBe(true);
    k.kwrite(pool.kvaOf(a) + 5, Buffer.from('cluster'));
    expect(v.subarray(5, 12).toString()).toBe('cluster');
    v.write('direct', 100);
    expect(k.kread(pool.kvaOf(a) + 100, 6).toString()).toBe('direct');
  });

  it('put gives an item back for reuse; items are distinct while out', async () => {
    const k = boot();
    const pool = new Pool(k, 'mclpl', MCLBYTES, 2);
    const got = await pool.getMany(4);
    expect(new Set(got).size).toBe(4);
    expect(pool.inUse).toBe(4);
    pool.put(got[2]);
    expect(pool.inUse).toBe(3);
    expect(pool.getSync()).toBe(got[2]);
    k.checkInvariants();
  });

  it('put of something that is not an item of this pool is EINVAL and changes nothing', async () => {
    const k = boot();
    const pool = new Pool(k, 'mclpl', MCLBYTES, 2);
    const a = await pool.get();
    for (const bad of [a + 1, 10 * PAGE_SIZE * 1000, -MCLBYTES, Number.NaN]) {
      await expectError(() => pool.put(bad), 'EINVAL');
    }
    expect(pool.inUse).toBe(1);
  });

  it('view and kvaOf of something that is not an item of this pool are EINVAL', async () => {
    const k = boot();
    const pool = new Pool(k, 'mclpl', MCLBYTES, 2);
    const a = await pool.get();
    const other = new Pool(k, 'other', MCLBYTES, 1);
    const b = await other.get();
    for (const bad of [12345, a + 1, b, -MCLBYTES, 10 * PAGE_SIZE * 1000, Number.NaN, '0', undefined]) {
      await expectError(() => pool.view(bad as never), 'EINVAL');
      await expectError(() => pool.kvaOf(bad as never), 'EINVAL');
    }
    expect(pool.view(a).length).toBe(MCLBYTES);
    k.checkInvariants();
  });

  it('view and kvaOf of an item that is not out panic (a use after put); once drained it is EINVAL', async () => {
    const k = boot();
    const pool = new Pool(k, 'mclpl', MCLBYTES, 2);
    const [a, b] = await pool.getMany(2);
    pool.put(a);
    expectPanic(() => pool.view(a), /used after put/);
    expectPanic(() => pool.kvaOf(a), /used after put/);
    pool.put(b);
    pool.drain();
    await expectError(() => pool.view(a), 'EINVAL');
    await expectError(() => pool.kvaOf(b), 'EINVAL');
    expect(pool.inUse).toBe(0);
  });

  it('a double put panics and does not hand the item out twice', async () => {
    const k = boot();
    const pool = new Pool(k, 'mclpl', MCLBYTES, 1);
    const a = await pool.get();
    pool.put(a);
    expectPanic(() => pool.put(a), /put twice/);
    expect(pool.inUse).toBe(0);
    const both = await pool.getMany(2);
    expect(new Set(both).size).toBe(2);
    expect(pool.getSync()).toBe(-1);
  });

  it('at its page limit, get waits for a put', async () => {
    const k = boot();
    const pool = new Pool(k, 'mclpl', MCLBYTES, 1);
    const [a] = await pool.getMany(2);
    const p = pool.get();
    expect(await settled(p)).toBe(false);
    expect(pool.npages).toBe(1);
    pool.put(a);
    expect(await p).toBe(a);
  });
});

describe('Pool.getMany', () => {
  it('takes n items at once, growing by as many pages as needed', async () => {
    const k = boot();
    const pool = new Pool(k, 'mclpl', MCLBYTES, 8);
    const got = await pool.getMany(7);
    expect(got.length).toBe(7);
    expect(new Set(got).size).toBe(7);
    expect(pool.npages).toBe(4);
    expect(pool.inUse).toBe(7);
    k.checkInvariants();
  });

  it('refuses a count that could never be had at once (EINVAL) instead of waiting forever', async () => {
    const k = boot();
    const pool = new Pool(k, 'mclpl', MCLBYTES, 2);
    for (const bad of [5, 0, -1, 1.5, Number.NaN, '1']) {
      await expectError(pool.getMany(bad as never), 'EINVAL');
      await expectError(() => pool.getManySync(bad as never), 'EINVAL');
    }
    const two = await pool.getMany(2);
    pool.put(two[0]);
    pool.put(two[1]);
    for (const bad of [5, 0, -1, 1.5, Number.NaN, '1']) {
      await expectError(() => pool.getManySync(bad as never), 'EINVAL');
    }
    expect((pool.getManySync(4) ?? []).length).toBe(0);
    pool.drain();
    expect(pool.inUse).toBe(0);
    expect(pool.npages).toBe(0);
  });

  it('waits holding nothing: two takers that each need most of the pool both finish (no hold-and-wait)', async () => {
    const k = boot();
    const pool = new Pool(k, 'mclpl', MCLBYTES, 4);
    const first = pool.getMany(6);
    const second = pool.getMany(6);
    const a = await first;
    expect(a.length).toBe(6);
    expect(await settled(second)).toBe(false);
    expect(pool.inUse).toBe(6);
    for (const x of a) pool.put(x);
    const b = await second;
    expect(b.length).toBe(6);
    expect(pool.inUse).toBe(6);
  });

  it('serves waiters first come, first served; getSync does not jump the queue', async () => {
    const k = boot();
    const pool = new Pool(k, 'mclpl', MCLBYTES, 2);
    const held = await pool.getMany(4);
    const order: string[] = [];
    const big = pool.getMany(3).then((x) => {
      order.push('big');
      return x;
    });
    const small = pool.getMany(1).then((x) => {
      order.push('small');
      return x;
    });
    pool.put(held[0]);
    expect(pool.getSync()).toBe(-1);
    pool.put(held[1]);
    pool.put(held[2]);
    const gotBig = await big;
    expect(await settled(small)).toBe(false);
    pool.put(held[3]);
    await small;
    expect(order).toEqual(['big', 'small']);
    expect(gotBig.length).toBe(3);
    expect(pool.inUse).toBe(4);
  });

  it('ENOMEM when the VM system runs out of pages: nothing is kept, and the pool still works', async () => {
    const k = boot(8);
    const pool = new Pool(k, 'mclpl', MCLBYTES, 32);
    await expectError(pool.getMany(20), 'ENOMEM');
    expect(pool.inUse).toBe(0);
    k.checkInvariants();
    const two = await pool.getMany(2);
    expect(two.length).toBe(2);
    for (const x of two) pool.put(x);
    pool.drain();
    expect(k.stats().freePages).toBe(8);
  });
});

describe('Pool gives its pages back when memory runs out', () => {
  it('a page the pool cannot map (kernel address space used up) goes back at once: ENOMEM, nothing kept', async () => {
    const k = boot(16);
    const pool = new Pool(k, 'mclpl', MCLBYTES, 8);
    /* take every page of kernel va there is */
    let taken = 0;
    for (let n = 1 << 17; n >= 1; n >>= 1) {
      for (;;) {
        try {
          k.kva.alloc(n);
          taken += n;
        } catch {
          break;
        }
      }
    }
    expect(taken).toBeGreaterThan(0);
    await expectError(pool.getMany(2), 'ENOMEM');
    expect(pool.npages).toBe(0);
    expect(k.stats()).toMatchObject({ wiredPages: 0, freePages: 16 });
    k.checkInvariants();
  });

  it('a getMany that fails with ENOMEM gives back the pages it grew by: wired and free are as before', async () => {
    const k = boot(8);
    const pool = new Pool(k, 'mclpl', MCLBYTES, 32);
    await expectError(pool.getMany(20), 'ENOMEM');
    expect(pool.npages).toBe(0);
    expect(k.stats().wiredPages).toBe(0);
    expect(k.stats().freePages).toBe(8);
    expect(k.stats().kernelVaPages).toBe(0);
    k.checkInvariants();
  });

  it('and the pages that were idle before it; pages with an item out stay', async () => {
    const k = boot(8);
    const pool = new Pool(k, 'mclpl', MCLBYTES, 32);
    const held = await pool.getMany(6);
    pool.put(held[0]);
    pool.put(held[1]);
    expect(pool.npages).toBe(3);
    await expectError(pool.getMany(20), 'ENOMEM');
    expect(pool.npages).toBe(2);
    expect(pool.inUse).toBe(4);
    expect(k.stats().wiredPages).toBe(2);
    for (const x of held.slice(2)) expect(pool.view(x).length).toBe(MCLBYTES);
    k.checkInvariants();
  });

  it('a taker waiting in line behind one that fails with ENOMEM still gets its items', async () => {
    const k = boot(4);
    const pool = new Pool(k, 'mclpl', MCLBYTES, 6);
    const held = await pool.getMany(2);
    const failing = pool.getMany(10);
    const behind = pool.getMany(2);
    await expectError(failing, 'ENOMEM');
    expect((await behind).length).toBe(2);
    for (const x of held) pool.put(x);
    k.checkInvariants();
  });

  it('a put never gives pages back by itself; reclaim does, unless a taker is collecting items', async () => {
    const k = boot();
    const pool = new Pool(k, 'mclpl', MCLBYTES, 8);
    for (const x of await pool.getMany(4)) pool.put(x);
    expect(pool.npages).toBe(2);
    expect(k.stats().wiredPages).toBe(2);
    /* a taker growing the pool: the pages it grows by are idle only until it takes their items */
    const taking = pool.getMany(8);
    expect(pool.reclaim()).toBe(0);
    const got = await taking;
    expect(pool.npages).toBe(4);
    for (const x of got) pool.put(x);
    expect(pool.reclaim()).toBe(4);
    expect(pool.npages).toBe(0);
    expect(k.stats().wiredPages).toBe(0);
    k.checkInvariants();
  });
});

describe('Pool.drain', () => {
  it('gives back only pages with no item out, unmapped and freed', async () => {
    const k = boot();
    const pool = new Pool(k, 'mclpl', MCLBYTES, 4);
    const got = await pool.getMany(6);
    const keep = got[0];
    for (const x of got.slice(1)) pool.put(x);
    expect(pool.drain()).toBe(2);
    expect(pool.npages).toBe(1);
    expect(k.stats().wiredPages).toBe(1);
    expect(k.stats().kernelVaPages).toBe(1);
    expect(pool.view(keep).buffer).toBe(k.uvm.ram.buffer);
    k.checkInvariants();
    pool.put(keep);
    expect(pool.drain()).toBe(1);
    expect(k.stats().wiredPages).toBe(0);
    expect(k.stats().kernelVaPages).toBe(0);
    expect(k.stats().freePages).toBe(64);
    k.checkInvariants();
  });

  it('a drained pool grows again on demand', async () => {
    const k = boot();
    const pool = new Pool(k, 'mclpl', MCLBYTES, 1);
    const [a, b] = await pool.getMany(2);
    pool.put(a);
    pool.put(b);
    pool.drain();
    const again = await pool.getMany(2);
    expect(again.length).toBe(2);
    expect(pool.npages).toBe(1);
  });
});

describe('Pool.getMany with an AbortSignal', () => {
  it('an already aborted signal is EINTR at once even when items are free: nothing taken, no growth', async () => {
    const k = boot();
    const pool = new Pool(k, 'mclpl', MCLBYTES, 2);
    await expectError(pool.getMany(1, AbortSignal.abort()), 'EINTR');
    expect(pool.npages).toBe(0);
    const [a] = await pool.getMany(1);
    pool.put(a);
    await expectError(pool.getMany(1, AbortSignal.abort()), 'EINTR');
    expect(pool.inUse).toBe(0);
  });

  it('a signal that is not an AbortSignal is EINVAL before it queues: later puts keep the counts right', async () => {
    const k = boot();
    const pool = new Pool(k, 'mclpl', MCLBYTES, 1);
    for (const bad of ['nope', {}, 42, null]) await expectError(pool.getMany(1, bad as never), 'EINVAL');
    const [a, b] = await pool.getMany(2);
    for (const bad of ['nope', {}, null]) await expectError(pool.getMany(1, bad as never), 'EINVAL');
    const next = pool.getMany(1);
    pool.put(a);
    expect(await next).toEqual([a]);
    pool.put(b);
    pool.put(a);
    expect(pool.inUse).toBe(0);
    expect((await pool.getMany(2)).length).toBe(2);
    k.checkInvariants();
  });

  it('an abort while waiting in line gives EINTR, takes nothing, and lets the next taker in', async () => {
    const k = boot();
    const pool = new Pool(k, 'mclpl', MCLBYTES, 2);
    const held = await pool.getMany(3);
    const ac = new AbortController();
    const waiting = pool.getMany(2, ac.signal);
    const behind = pool.getMany(1);
    expect(await settled(waiting)).toBe(false);
    ac.abort();
    await expectError(waiting, 'EINTR');
    expect(await pool.getMany(1, ac.signal).catch((e) => e.code)).toBe('EINTR');
    expect((await behind).length).toBe(1);
    expect(pool.inUse).toBe(4);
    for (const a of held) pool.put(a);
    expect((await pool.getMany(3)).length).toBe(3);
    k.checkInvariants();
  });
});
