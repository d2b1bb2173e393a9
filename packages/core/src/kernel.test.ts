import { type FileHandle, readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import {
  deferred,
  expectError,
  expectErrorSync,
  expectPanic,
  frameAt,
  mappedFile,
  pattern,
  settle,
  useTmpDir,
  writeFileOf,
} from '../test/helpers.js';
import {
  checkKernel,
  type IoEvent,
  Kernel,
  type KernelOptions,
  MAX_PHYS_PAGES,
  PAGE_SIZE,
  Prot,
  type TraceEvent,
  uvmKmAllocPage,
  uvmKmFreePage,
  uvmLoan,
  uvmUnloanPages,
  type VmPage,
} from './index.js';
import type { Proc } from './proc.js';
import { PG_BUSY } from './uvm_page.js';

const RW = Prot.READ | Prot.WRITE;

describe('new Kernel', () => {
  it('boots with 4096 pages of RAM and 8192 of swap by default, all free', () => {
    const k = new Kernel();
    expect(k.stats()).toMatchObject({
      physPages: 4096,
      freePages: 4096,
      swapPages: 8192,
      swapUsed: 0,
      activePages: 0,
      inactivePages: 0,
      wiredPages: 0,
      busyPages: 0,
      anons: 0,
      processes: 0,
      kernelVaPages: 0,
      faults: 0,
    });
    k.checkInvariants();
  });

  it('takes the sizes it is given', () => {
    const k = new Kernel({ physPages: 3, swapPages: 0 });
    expect(k.stats()).toMatchObject({ physPages: 3, freePages: 3, swapPages: 0 });
    expect(k.uvm.ram.buffer.byteLength).toBe(3 * PAGE_SIZE);
  });

  it.each([
    ['physPages 0', { physPages: 0 }],
    ['physPages -1', { physPages: -1 }],
    ['physPages 1.5', { physPages: 1.5 }],
    ['physPages NaN', { physPages: Number.NaN }],
    ['physPages Infinity', { physPages: Number.POSITIVE_INFINITY }],
    ['physPages beyond the maximum', { physPages: MAX_PHYS_PAGES + 1 }],
    ['physPages as a string', { physPages: '8' }],
    ['swapPages -1', { swapPages: -1 }],
    ['swapPages 2.5', { swapPages: 2.5 }],
    ['swapPages NaN', { swapPages: Number.NaN }],
    ['swapPages as a string', { swapPages: '8' }],
    ['null options', null],
    ['numeric options', 12],
    ['string options', 'big'],
  ])('refuses %s with EINVAL', (_what, opts) => {
    expectErrorSync(() => new Kernel(opts as unknown as KernelOptions), 'EINVAL');
  });
});

describe('Kernel.stats', () => {
  const tmp = useTmpDir();

  it('counts faults, zero-fills, copy-on-write faults and anons exactly', async () => {
    const k = new Kernel({ physPages: 32, swapPages: 0 });
    const p = k.createProcess();
    const va = p.mmap(3 * PAGE_SIZE);
    await p.write(va, pattern(3 * PAGE_SIZE, 1));
    expect(k.stats()).toMatchObject({ faults: 3, zeroFills: 3, cowFaults: 0, anons: 3, activePages: 3 });
    const c = p.fork();
    expect(k.stats()).toMatchObject({ processes: 2, anons: 3, freePages: 29 });
    await c.write(va, Buffer.from('c'));
    /* one write fault: amap copy, then a copy of the shared anon */
    expect(k.stats()).toMatchObject({ faults: 4, cowFaults: 1, anons: 4, freePages: 28 });
    await c.read(va + PAGE_SIZE, 1);
    expect(k.stats()).toMatchObject({ faults: 5, cowFaults: 1, anons: 4, freePages: 28 });
    c.exit();
    p.exit();
    expect(k.stats()).toMatchObject({ anons: 0, freePages: 32, processes: 0 });
  });

  it('counts page-ins from files and from swap, page-outs, and swap in use', async () => {
    const {
      k,
      p,
      va: fva,
    } = await mappedFile(tmp.dir, 'f', 2 * PAGE_SIZE, 2, {}, { physPages: 16, swapPages: 32 });
    await p.read(fva, 2 * PAGE_SIZE);
    expect(k.stats()).toMatchObject({ pageins: 2, pageouts: 0, swapUsed: 0 });
    const va = p.mmap(24 * PAGE_SIZE);
    for (let i = 0; i < 24; i++) await p.write(va + i * PAGE_SIZE, pattern(PAGE_SIZE, i));
    const s = k.stats();
    expect(s.pageouts).toBeGreaterThanOrEqual(24 + 2 - 16);
    expect(s.swapUsed).toBeGreaterThan(0);
    expect(s.swapUsed).toBeLessThanOrEqual(s.pageouts);
    expect(s.freePages + s.activePages + s.inactivePages + s.busyPages).toBe(16);
    await p.read(va, PAGE_SIZE);
    expect(k.stats().pageins).toBeGreaterThan(s.pageins);
    p.exit();
    await settle(k);
    expect(k.stats()).toMatchObject({ freePages: 16, swapUsed: 0, anons: 0, busyPages: 0 });
  });

  it('reports pages being paged out as busy while the I/O is in flight', async () => {
    const k = new Kernel({ physPages: 16, swapPages: 32 });
    const p = k.createProcess();
    const va = p.mmap(20 * PAGE_SIZE);
    const gate = deferred();
    let busyDuringIo = -1;
    k.setIoHook(async (ev) => {
      if (ev.kind !== 'swapout') return;
      busyDuringIo = Math.max(busyDuringIo, k.stats().busyPages);
      await gate.promise;
    });
    const writing = (async () => {
      for (let i = 0; i < 20; i++) await p.write(va + i * PAGE_SIZE, pattern(PAGE_SIZE, i));
    })();
    await new Promise((r) => setImmediate(r));
    gate.resolve();
    await writing;
    expect(busyDuringIo).toBeGreaterThanOrEqual(1);
    await settle(k);
    expect(k.stats().busyPages).toBe(0);
  });
});

describe('Kernel.checkInvariants', () => {
  /* a kernel with a bit of everything: private, shared, forked, read-only */
  async function busyKernel(): Promise<{ k: Kernel; p: Proc; c: Proc; va: number; sva: number }> {
    const k = new Kernel({ physPages: 32, swapPages: 16 });
    const p = k.createProcess();
    const va = p.mmap(3 * PAGE_SIZE);
    await p.write(va, pattern(3 * PAGE_SIZE, 3));
    const sva = p.mmap(2 * PAGE_SIZE, { shared: true });
    await p.write(sva, pattern(2 * PAGE_SIZE, 4));
    const c = p.fork();
    await c.read(va, 3 * PAGE_SIZE);
    await c.read(sva, PAGE_SIZE);
    k.checkInvariants();
    return { k, p, c, va, sva };
  }

  const corruptions: [string, (s: Awaited<ReturnType<typeof busyKernel>>) => void][] = [
    ['a queue length', ({ k }) => void k.uvm.free.length++],
    ['a queue link', ({ k }) => void (k.uvm.active.head!.next!.prev = null)],
    ['a free page with flags', ({ k }) => void (k.uvm.free.head!.flags = PG_BUSY)],
    ['a free page with an owner', ({ k }) => void (k.uvm.free.head!.uanon = k.uvm.active.head!.uanon)],
    ['the wired page counter', ({ k }) => void k.uvm.wiredPages++],
    ['the order of a free block', ({ k }) => void k.uvm.free.order[k.uvm.free.head!.frame]++],
    ['a free page taken off the free lists by hand', ({ k }) => void k.uvm.free.allocPage()],
    ['a page lost from every queue', ({ k }) => k.uvm.active.remove(k.uvm.active.head!)],
    [
      'an anon page pointing at another anon',
      ({ k, p, va }) => {
        const a = k.uvm.pages[frameAt(p, va)];
        const b = k.uvm.pages[frameAt(p, va + PAGE_SIZE)];
        a.uanon = b.uanon;
      },
    ],
    [
      'an object page its object does not hold',
      ({ k, p, sva }) => {
        const pg = k.uvm.pages[frameAt(p, sva)];
        pg.uobject!.pages[pg.offset] = undefined;
      },
    ],
    [
      'a mapping of the wrong frame',
      ({ k, p, va }) => {
        const vpn = va / PAGE_SIZE;
        const free = k.uvm.free.head!.frame;
        k.uvm.mmu.pvRemove(p.map.pmap.extract(vpn), p.map.pmap, vpn);
        p.map.pmap.frames[vpn] = free + 1;
        k.uvm.mmu.pvInsert(free, p.map.pmap, vpn);
      },
    ],
    ['a pmap resident count', ({ p }) => void p.map.pmap.resident++],
    ['a missing pv entry', ({ k, p, va }) => void (k.uvm.mmu.pv[frameAt(p, va)] = null)],
    [
      'a mapping more permissive than its entry',
      ({ p, va }) => {
        p.mprotect(va, PAGE_SIZE, Prot.READ);
        p.map.pmap.bits[va / PAGE_SIZE] |= Prot.WRITE;
      },
    ],
    [
      'a writable mapping of a needs-copy entry',
      ({ c, va }) => {
        c.map.pmap.bits[va / PAGE_SIZE] |= Prot.WRITE;
      },
    ],
    ['overlapping map entries', ({ p }) => void (p.map.entries[1].start = p.map.entries[0].start)],
    ['an unaligned map entry', ({ p }) => void (p.map.entries[0].end += 1)],
    ['an amap reference count', ({ p }) => void p.map.entries[0].amap!.ref++],
    ['an amap slot reference count', ({ p }) => void p.map.entries[0].amap!.ppref[1]++],
    ['an amap use count', ({ p }) => void p.map.entries[0].amap!.nused--],
    [
      'an anon with fewer references than slots',
      ({ p }) => {
        const e = p.map.entries[0];
        e.amap!.slots[e.amapSlot]!.ref = 0;
      },
    ],
    [
      'an anon with neither page nor swap slot',
      ({ k, p, va }) => {
        const pg = k.uvm.pages[frameAt(p, va)];
        k.uvm.mmu.pageProtect(pg.frame, Prot.NONE);
        const anon = pg.uanon!;
        pg.uanon = null;
        pg.anonOwns = false;
        anon.page = null;
        k.uvm.active.remove(pg);
        k.uvm.free.freePage(pg);
        pg.flags = 0;
      },
    ],
  ];

  it.each(corruptions)('detects %s (KernelPanic)', async (_what, corrupt) => {
    const s = await busyKernel();
    corrupt(s);
    expectPanic(() => s.k.checkInvariants(), /invariant/);
  });
});

/* loanoutWarning: the next process warning the kernel emits about a hook or listener it removed */
function loanoutWarning(): Promise<Error> {
  return new Promise((resolve) => {
    const on = (w: Error) => {
      if (w.name !== 'LoanoutHookWarning') return;
      process.off('warning', on);
      resolve(w);
    };
    process.on('warning', on);
  });
}

describe('Kernel.onTrace', () => {
  it('reports page-outs and page-ins until unsubscribed', async () => {
    const k = new Kernel({ physPages: 16, swapPages: 32 });
    const events: TraceEvent[] = [];
    const off = k.onTrace((ev) => events.push(ev));
    const p = k.createProcess();
    const va = p.mmap(24 * PAGE_SIZE);
    for (let i = 0; i < 24; i++) await p.write(va + i * PAGE_SIZE, pattern(PAGE_SIZE, i));
    await p.read(va, PAGE_SIZE);
    const outs = events.filter((e) => e.kind === 'pageout');
    const ins = events.filter((e) => e.kind === 'pagein');
    expect(outs.length).toBe(k.stats().pageouts);
    expect(ins.length).toBeGreaterThanOrEqual(1);
    expect(ins[ins.length - 1].frame).toBe(frameAt(p, va));
    for (const e of events) {
      expect(e.frame).toBeGreaterThanOrEqual(0);
      expect(e.frame).toBeLessThan(16);
    }
    off();
    const n = events.length;
    for (let i = 0; i < 24; i++) await p.read(va + i * PAGE_SIZE, 1);
    expect(k.stats().pageins).toBeGreaterThan(1);
    expect(events).toHaveLength(n);
  });

  it('each unsubscribe takes out its own registration, once, even of a listener added twice', () => {
    const k = new Kernel({ physPages: 16 });
    const fn = () => {};
    const offA = k.onTrace(fn);
    const offB = k.onTrace(fn);
    offA();
    offA();
    expect(k.uvm.tracers).toEqual([fn]);
    offB();
    expect(k.uvm.tracers).toHaveLength(0);
  });

  it('refuses a listener that is not a function (EINVAL)', () => {
    const k = new Kernel({ physPages: 16 });
    for (const bad of [null, undefined, 42, 'fn', {}])
      expectErrorSync(() => k.onTrace(bad as never), 'EINVAL');
    expect(k.uvm.tracers).toHaveLength(0);
  });

  it('removes a listener that throws, warns, and finishes the work it interrupted', async () => {
    const k = new Kernel({ physPages: 32 });
    const p = k.createProcess();
    const va = p.mmap(3 * PAGE_SIZE);
    await p.write(va, pattern(3 * PAGE_SIZE, 1));
    const pages = await uvmLoan(p.map, va, 3 * PAGE_SIZE, 'kernel');
    const good: string[] = [];
    k.onTrace(() => {
      throw new Error('observer bug');
    });
    k.onTrace((ev) => good.push(ev.kind));
    const warned = loanoutWarning();
    uvmUnloanPages(pages);
    expect((await warned).message).toMatch(/trace listener threw \(observer bug\) and was removed/);
    expect(good).toEqual(['unloan', 'unloan', 'unloan']);
    expect(k.uvm.tracers).toHaveLength(1);
    expect(k.stats()).toMatchObject({ loanedPages: 0, wiredPages: 0 });
    await p.write(va, pattern(PAGE_SIZE, 2));
    p.exit();
    k.checkInvariants();
  });
});

describe('Kernel.addReclaimHook', () => {
  it('the pagedaemon asks the hook for pages back before it runs out of memory', async () => {
    const k = new Kernel({ physPages: 16, swapPages: 0 });
    const cache: VmPage[] = [];
    for (let i = 0; i < 8; i++) cache.push(await uvmKmAllocPage(k.uvm));
    let asked = 0;
    const remove = k.addReclaimHook(() => {
      asked++;
      const n = cache.length;
      for (const pg of cache.splice(0)) uvmKmFreePage(pg);
      return n;
    });
    /* 12 pages of user memory: only possible if the hook gives its 8 back */
    const p = k.createProcess();
    const va = p.mmap(12 * PAGE_SIZE);
    await p.write(va, pattern(12 * PAGE_SIZE, 5));
    expect(asked).toBeGreaterThanOrEqual(1);
    expect(cache).toHaveLength(0);
    remove();
    remove();
    expect(k.uvm.reclaimHooks).toHaveLength(0);
    p.exit();
    await settle(k);
  });

  it('without the hook the same memory is ENOMEM; a bad hook is EINVAL', async () => {
    const k = new Kernel({ physPages: 16, swapPages: 0 });
    for (let i = 0; i < 8; i++) await uvmKmAllocPage(k.uvm);
    const p = k.createProcess();
    const va = p.mmap(12 * PAGE_SIZE);
    await expectError(p.write(va, pattern(12 * PAGE_SIZE, 5)), 'ENOMEM');
    for (const bad of [null, 42, 'hook', {}]) expectErrorSync(() => k.addReclaimHook(bad as never), 'EINVAL');
    expect(k.uvm.reclaimHooks).toHaveLength(0);
    p.exit();
    await settle(k);
    /* the 8 kernel pages are still held; every other page is free again */
    expect(k.stats()).toMatchObject({ freePages: 8, wiredPages: 8, processes: 0 });
  });

  it('a hook that throws is removed with a warning, and the pagedaemon goes on', async () => {
    const k = new Kernel({ physPages: 16, swapPages: 16 });
    k.addReclaimHook(() => {
      throw new Error('cache bug');
    });
    const warned = loanoutWarning();
    const p = k.createProcess();
    const va = p.mmap(24 * PAGE_SIZE);
    await p.write(va, pattern(24 * PAGE_SIZE, 6));
    expect((await warned).message).toMatch(/reclaim hook threw \(cache bug\) and was removed/);
    expect(k.uvm.reclaimHooks).toHaveLength(0);
    expect((await p.read(va, 24 * PAGE_SIZE)).equals(pattern(24 * PAGE_SIZE, 6))).toBe(true);
    p.exit();
    await settle(k);
  });
});

describe('Kernel.setIoHook', () => {
  it('still lets the event loop run during every I/O when the hook returns at once', async () => {
    /* a hook that returns at once used to make swap I/O microtask-only: under pressure a page could be
       swapped out and faulted back in forever without a timer or a file read ever running */
    const k = new Kernel({ physPages: 8, swapPages: 32 });
    const p = k.createProcess();
    const va = p.mmap(16 * PAGE_SIZE);
    let ios = 0;
    let immediateRan = false;
    let ranBeforeSecondIo: boolean | null = null;
    k.setIoHook(() => {
      if (++ios === 2) ranBeforeSecondIo = immediateRan;
    });
    setImmediate(() => {
      immediateRan = true;
    });
    await p.write(va, pattern(16 * PAGE_SIZE, 3));
    expect(ios).toBeGreaterThanOrEqual(2);
    expect(ranBeforeSecondIo).toBe(true);
    expect((await p.read(va, 16 * PAGE_SIZE)).equals(pattern(16 * PAGE_SIZE, 3))).toBe(true);
    p.exit();
    await settle(k);
  });

  it('sees swap I/O, and the I/O waits for the hook', async () => {
    const k = new Kernel({ physPages: 16, swapPages: 32 });
    const seen: IoEvent[] = [];
    k.setIoHook((ev) => {
      seen.push(ev);
    });
    const p = k.createProcess();
    const va = p.mmap(24 * PAGE_SIZE);
    for (let i = 0; i < 24; i++) await p.write(va + i * PAGE_SIZE, pattern(PAGE_SIZE, i));
    expect(seen.some((e) => e.kind === 'swapout' && (e.slot ?? 0) >= 1)).toBe(true);
    /* page 0 is on swap now; hold its swap-in open */
    expect(frameAt(p, va)).toBe(-1);
    const gate = deferred();
    let held = 0;
    k.setIoHook(async (ev) => {
      if (ev.kind === 'swapin') {
        held++;
        await gate.promise;
      }
    });
    let done = false;
    const reading = p.read(va, PAGE_SIZE).then((b) => {
      done = true;
      return b;
    });
    while (held === 0) await new Promise((r) => setImmediate(r));
    for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
    expect(done).toBe(false);
    expect(k.stats().busyPages).toBeGreaterThanOrEqual(1);
    gate.resolve();
    expect((await reading).equals(pattern(PAGE_SIZE, 0))).toBe(true);
    k.setIoHook(null);
    await settle(k);
  });
});

describe('Kernel.sync and idle', () => {
  const tmp = useTmpDir();

  it('sync flushes every mapped file; idle waits for the write-back of unmapped ones', async () => {
    const f1 = await writeFileOf(tmp.dir, 'a', PAGE_SIZE, 5);
    const f2 = await writeFileOf(tmp.dir, 'b', PAGE_SIZE, 6);
    const k = new Kernel({ physPages: 16, swapPages: 0 });
    const p = k.createProcess();
    const a = await p.mmapFile(f1, { prot: RW, shared: true });
    const b = await p.mmapFile(f2, { prot: RW, shared: true });
    await p.write(a, Buffer.from('AAAA'));
    await p.write(b, Buffer.from('BBBB'));
    expect((await readFile(f1)).subarray(0, 4).toString()).not.toBe('AAAA');
    await k.sync();
    expect((await readFile(f1)).subarray(0, 4).toString()).toBe('AAAA');
    expect((await readFile(f2)).subarray(0, 4).toString()).toBe('BBBB');
    await p.write(b, Buffer.from('bbbb'));
    p.munmap(b, PAGE_SIZE);
    await k.idle();
    expect((await readFile(f2)).subarray(0, 4).toString()).toBe('bbbb');
    p.exit();
    await settle(k);
    expect(k.stats().freePages).toBe(16);
  });

  it('exiting every process, then idle, writes back and closes every file the kernel opened', async () => {
    const f1 = await writeFileOf(tmp.dir, 'c', 2 * PAGE_SIZE, 7);
    const f2 = await writeFileOf(tmp.dir, 'd', PAGE_SIZE, 8);
    const k = new Kernel({ physPages: 16, swapPages: 0 });
    const p = k.createProcess();
    const a = await p.mmapFile(f1, { prot: RW, shared: true });
    await p.write(a, Buffer.from('dirty'));
    p.fork();
    await k.createProcess().mmapFile(f2);
    /* the open files themselves, to see them closed (not left for the garbage collector) */
    const handles = [...k.uvm.vnodes.values()].map((vn) => Reflect.get(vn, 'fh') as FileHandle);
    expect(handles.map((fh) => fh.fd >= 0)).toEqual([true, true]);
    for (const proc of k.processes) proc.exit();
    await k.idle();
    expect(handles.map((fh) => fh.fd)).toEqual([-1, -1]);
    expect(k.uvm.vnodes.size).toBe(0);
    expect(k.stats()).toMatchObject({ processes: 0, freePages: 16 });
    expect((await readFile(f1)).subarray(0, 5).toString()).toBe('dirty');
  });
});

describe('Kernel.shutdown', () => {
  const tmp = useTmpDir();

  it('exits every process, writes back and closes every file, and then refuses new work', async () => {
    const f1 = await writeFileOf(tmp.dir, 's1', 2 * PAGE_SIZE, 3);
    const f2 = await writeFileOf(tmp.dir, 's2', PAGE_SIZE, 4);
    const k = new Kernel({ physPages: 16, swapPages: 8 });
    const p = k.createProcess();
    const a = await p.mmapFile(f1, { prot: RW, shared: true });
    await p.write(a + PAGE_SIZE, Buffer.from('written'));
    p.fork();
    await k.createProcess().mmapFile(f2);
    const handles = [...k.uvm.vnodes.values()].map((vn) => Reflect.get(vn, 'fh') as FileHandle);
    const first = k.shutdown();
    const second = k.shutdown();
    await Promise.all([first, second]);
    expect(handles.map((fh) => fh.fd)).toEqual([-1, -1]);
    expect(k.processes).toEqual([]);
    expect(k.uvm.vnodes.size).toBe(0);
    expect(k.stats()).toMatchObject({ processes: 0, freePages: 16, swapUsed: 0 });
    expect((await readFile(f1)).subarray(PAGE_SIZE, PAGE_SIZE + 7).toString()).toBe('written');
    k.checkInvariants();
    /* idempotent: a later call is done at once; and the kernel takes no new work */
    await k.shutdown();
    const err = expectErrorSync(() => k.createProcess(), 'ESHUTDOWN');
    expect(err.message).toMatch(/shut down/);
    expectErrorSync(() => checkKernel('pool_init', k), 'ESHUTDOWN');
    await expectError(p.mmapFile(f2), 'ESRCH');
  });
});

describe('Kernel.kenter of loaned pages', () => {
  it('maps them read-only, and refuses (panics) to map them writable', async () => {
    const { uvmLoan, uvmUnloanPages } = await import('./index.js');
    const k = new Kernel({ physPages: 32 });
    const p = k.createProcess();
    const va = p.mmap(2 * PAGE_SIZE);
    await p.write(va, pattern(2 * PAGE_SIZE, 3));
    const pages = await uvmLoan(p.map, va, 2 * PAGE_SIZE, 'kernel');
    const kva = k.kva.alloc(2);
    expectPanic(() => k.kenter(kva, pages, RW), /mapped writable/);
    k.kenter(kva, pages, Prot.READ);
    expect(k.kread(kva, 2 * PAGE_SIZE).equals(pattern(2 * PAGE_SIZE, 3))).toBe(true);
    expectPanic(() => k.kwrite(kva, Buffer.from('x')), /read-only/);
    k.kremove(kva, 2);
    k.kva.free(kva, 2);
    uvmUnloanPages(pages);
    k.checkInvariants();
    p.exit();
    expect(k.stats()).toMatchObject({ freePages: 32, loanedPages: 0, wiredPages: 0 });
  });
});
