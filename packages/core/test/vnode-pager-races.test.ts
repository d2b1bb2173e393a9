/*
 * Races injected in the middle of pager I/O (kernel.setIoHook): the world changes while a fault sleeps
 * on a vnode read or a swap transfer, and the fault handler must revalidate and still be right.
 */
import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { type IoEvent, Kernel, PAGE_SIZE, Prot } from '../src/index.js';
import { amapAdd } from '../src/uvm_amap.js';
import { uvmAnonAlloc } from '../src/uvm_anon.js';
import { PG_CLEAN, uvmPageActivate, uvmPageAlloc, uvmPageUnbusy } from '../src/uvm_page.js';
import {
  deferred,
  expectError,
  frameAt,
  mappedFile,
  pattern,
  settle,
  useTmpDir,
  writeFileOf,
} from './helpers.js';

const RW = Prot.READ | Prot.WRITE;

const tmp = useTmpDir();

/* onceOn: an io hook that runs `fn` the first time an event of `kind` happens */
function onceOn(kind: IoEvent['kind'], fn: (ev: IoEvent) => Promise<void> | void) {
  let fired = false;
  return async (ev: IoEvent) => {
    if (ev.kind !== kind || fired) return;
    fired = true;
    await fn(ev);
  };
}

async function ticks(n: number): Promise<void> {
  for (let i = 0; i < n; i++) await new Promise((r) => setImmediate(r));
}

describe('the map changes while a vnode read sleeps', () => {
  it('munmap of another region: the fault looks up again and returns the file bytes', async () => {
    const file = await writeFileOf(tmp.dir, 'a', 4 * PAGE_SIZE, 1);
    const k = new Kernel({ physPages: 16, swapPages: 0 });
    const p = k.createProcess();
    const other = p.mmap(2 * PAGE_SIZE);
    await p.write(other, Buffer.from('other'));
    const va = await p.mmapFile(file);
    let reads = 0;
    k.setIoHook(async (ev) => {
      if (ev.kind !== 'vnode-read') return;
      reads++;
      if (reads === 1) {
        const v = p.map.version;
        p.munmap(other, 2 * PAGE_SIZE);
        expect(p.map.version).not.toBe(v);
      }
    });
    const got = await p.read(va + PAGE_SIZE, PAGE_SIZE);
    expect(got.equals(pattern(4 * PAGE_SIZE, 1).subarray(PAGE_SIZE, 2 * PAGE_SIZE))).toBe(true);
    expect(reads).toBe(1);
    expect(k.stats().pageins).toBe(1);
    expect(frameAt(p, va + PAGE_SIZE)).toBeGreaterThanOrEqual(0);
    k.checkInvariants();
    p.exit();
    await settle(k);
    expect(k.stats().freePages).toBe(16);
  });

  it('mprotect of another page of the same mapping (a clip): still the right bytes', async () => {
    const { file, k, p, va } = await mappedFile(tmp.dir, 'b', 4 * PAGE_SIZE, 2, { prot: RW, shared: true });
    k.setIoHook(
      onceOn('vnode-read', () => {
        p.mprotect(va + 3 * PAGE_SIZE, PAGE_SIZE, Prot.READ);
      }),
    );
    await p.write(va + PAGE_SIZE + 10, Buffer.from('shared write'));
    expect(p.map.entries).toHaveLength(2);
    const want = pattern(4 * PAGE_SIZE, 2);
    Buffer.from('shared write').copy(want, PAGE_SIZE + 10);
    expect((await p.read(va, 4 * PAGE_SIZE)).equals(want)).toBe(true);
    k.checkInvariants();
    await k.sync();
    expect((await readFile(file)).equals(want)).toBe(true);
    p.exit();
    await settle(k);
    expect(k.stats().freePages).toBe(16);
  });

  it('mprotect of the page being read to NONE: the retried fault says EFAULT, the page stays cached', async () => {
    const { k, p, va } = await mappedFile(tmp.dir, 'c', 2 * PAGE_SIZE, 3);
    k.setIoHook(
      onceOn('vnode-read', () => {
        p.mprotect(va, PAGE_SIZE, Prot.NONE);
      }),
    );
    await expectError(p.read(va, 10), 'EFAULT');
    const vn = p.map.entries[0].object!;
    expect(vn.resident).toBe(1);
    expect(frameAt(p, va)).toBe(-1);
    expect(k.stats().busyPages).toBe(0);
    k.checkInvariants();
    /* access restored: no second read from the file */
    p.mprotect(va, PAGE_SIZE, Prot.READ);
    expect((await p.read(va, 10)).equals(pattern(10, 3))).toBe(true);
    expect(k.stats().pageins).toBe(1);
    p.exit();
    await settle(k);
    expect(k.stats().freePages).toBe(16);
  });

  it('a write whose mapping becomes read-only meanwhile fails with EFAULT and changes no byte', async () => {
    const { file, k, p, va } = await mappedFile(tmp.dir, 'd', PAGE_SIZE, 4, { prot: RW, shared: true });
    k.setIoHook(
      onceOn('vnode-read', () => {
        p.mprotect(va, PAGE_SIZE, Prot.READ);
      }),
    );
    await expectError(p.write(va, Buffer.from('nope')), 'EFAULT');
    expect((await p.read(va, PAGE_SIZE)).equals(pattern(PAGE_SIZE, 4))).toBe(true);
    await k.sync();
    expect((await readFile(file)).equals(pattern(PAGE_SIZE, 4))).toBe(true);
    k.checkInvariants();
    p.exit();
    await settle(k);
    expect(k.stats().freePages).toBe(16);
  });
});

describe('the page being read loses its mapping meanwhile', () => {
  it('munmap of the vnode mapping during its read: EFAULT, and the dying vnode frees the page', async () => {
    const { k, p, va } = await mappedFile(tmp.dir, 'e', 2 * PAGE_SIZE, 5);
    k.setIoHook(
      onceOn('vnode-read', () => {
        p.munmap(va, 2 * PAGE_SIZE);
      }),
    );
    await expectError(p.read(va, 10), 'EFAULT');
    k.checkInvariants();
    await settle(k);
    expect(k.uvm.vnodes.size).toBe(0);
    expect(k.stats()).toMatchObject({ freePages: 16, busyPages: 0 });
  });

  it('exit during the read of a file another process still maps: ESRCH, the page stays for the other', async () => {
    const file = await writeFileOf(tmp.dir, 'f', PAGE_SIZE, 6);
    const k = new Kernel({ physPages: 16, swapPages: 0 });
    const p = k.createProcess();
    const q = k.createProcess();
    const va = await p.mmapFile(file);
    const vb = await q.mmapFile(file);
    k.setIoHook(
      onceOn('vnode-read', () => {
        p.exit();
      }),
    );
    await expectError(p.read(va, 10), 'ESRCH');
    k.checkInvariants();
    expect(q.map.entries[0].object?.resident).toBe(1);
    expect((await q.read(vb, PAGE_SIZE)).equals(pattern(PAGE_SIZE, 6))).toBe(true);
    expect(k.stats().pageins).toBe(1);
    q.exit();
    await settle(k);
    expect(k.stats().freePages).toBe(16);
  });

  it('munmap of shared anonymous memory during its swap-in: the page is RELEASED and freed', async () => {
    const k = new Kernel({ physPages: 16, swapPages: 64 });
    const p = k.createProcess();
    const n = 24;
    const va = p.mmap(n * PAGE_SIZE, { shared: true });
    for (let i = 0; i < n; i++) await p.write(va + i * PAGE_SIZE, pattern(PAGE_SIZE, i));
    expect(frameAt(p, va)).toBe(-1);
    let released = false;
    k.setIoHook(
      onceOn('swapin', (ev) => {
        p.munmap(va, n * PAGE_SIZE);
        released = (k.uvm.pages[ev.frame].flags & 0x04) !== 0;
      }),
    );
    await expectError(p.read(va, 10), 'EFAULT');
    expect(released).toBe(true);
    k.checkInvariants();
    await settle(k);
    expect(k.stats()).toMatchObject({ freePages: 16, swapUsed: 0, busyPages: 0 });
  });

  it('munmap of private memory during its swap-in: the anon is RELEASED and freed with its slot', async () => {
    const k = new Kernel({ physPages: 16, swapPages: 64 });
    const p = k.createProcess();
    const n = 24;
    const va = p.mmap(n * PAGE_SIZE);
    for (let i = 0; i < n; i++) await p.write(va + i * PAGE_SIZE, pattern(PAGE_SIZE, i));
    expect(frameAt(p, va)).toBe(-1);
    k.setIoHook(
      onceOn('swapin', () => {
        p.munmap(va, n * PAGE_SIZE);
      }),
    );
    await expectError(p.read(va, 10), 'EFAULT');
    k.checkInvariants();
    await settle(k);
    expect(k.stats()).toMatchObject({ freePages: 16, swapUsed: 0, anons: 0, busyPages: 0 });
  });

  it('exit while the pagedaemon is writing one of our pages to swap: nothing leaks', async () => {
    const k = new Kernel({ physPages: 16, swapPages: 64 });
    const p = k.createProcess();
    const va = p.mmap(24 * PAGE_SIZE);
    k.setIoHook(
      onceOn('swapout', () => {
        p.exit();
      }),
    );
    const writing = (async () => {
      for (let i = 0; i < 24; i++) await p.write(va + i * PAGE_SIZE, pattern(PAGE_SIZE, i));
    })();
    const err = await writing.then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toMatchObject({ code: expect.stringMatching(/^(EFAULT|ESRCH)$/) });
    k.checkInvariants();
    await settle(k);
    expect(k.stats()).toMatchObject({ freePages: 16, swapUsed: 0, anons: 0, busyPages: 0, processes: 0 });
  });
});

describe('an amap slot is filled while a fault sleeps', () => {
  it('by a concurrent write to the same page of a private file mapping', async () => {
    const { file, k, p, va } = await mappedFile(tmp.dir, 'g', 2 * PAGE_SIZE, 7, { prot: RW });
    const gate = deferred();
    let held = false;
    k.setIoHook(
      onceOn('vnode-read', async () => {
        held = true;
        await gate.promise;
      }),
    );
    const reading = p.read(va, 100);
    while (!held) await ticks(1);
    const writing = p.write(va + 200, Buffer.from('concurrent'));
    await ticks(3);
    gate.resolve();
    const [got] = await Promise.all([reading, writing]);
    const file7 = pattern(2 * PAGE_SIZE, 7);
    expect(got.equals(file7.subarray(0, 100))).toBe(true);
    const want = Buffer.from(file7.subarray(0, PAGE_SIZE));
    Buffer.from('concurrent').copy(want, 200);
    expect((await p.read(va, PAGE_SIZE)).equals(want)).toBe(true);
    const e = p.map.entries[0];
    expect(e.amap?.nused).toBe(1);
    expect(k.stats()).toMatchObject({ pageins: 1, anons: 1 });
    k.checkInvariants();
    await k.sync();
    expect((await readFile(file)).equals(file7)).toBe(true);
    p.exit();
    await settle(k);
    expect(k.stats().freePages).toBe(16);
  });

  it('by many concurrent readers and writers of the same pages under memory pressure', async () => {
    const pages = 12;
    const { file, k, p, va } = await mappedFile(
      tmp.dir,
      'h',
      pages * PAGE_SIZE,
      8,
      { prot: RW },
      { physPages: 12, swapPages: 64 },
    );
    let n = 0;
    k.setIoHook(async (ev) => {
      if (ev.kind === 'vnode-read' && n++ % 2 === 0) await ticks(1);
    });
    const ops: Promise<unknown>[] = [];
    for (let round = 0; round < 3; round++) {
      for (let i = 0; i < pages; i++) {
        ops.push(p.read(va + i * PAGE_SIZE, 64));
        ops.push(p.write(va + i * PAGE_SIZE + 100 + round, Buffer.from([0xa0 + round])));
      }
    }
    await Promise.all(ops);
    const want = pattern(pages * PAGE_SIZE, 8);
    for (let i = 0; i < pages; i++) for (let r = 0; r < 3; r++) want[i * PAGE_SIZE + 100 + r] = 0xa0 + r;
    expect((await p.read(va, pages * PAGE_SIZE)).equals(want)).toBe(true);
    expect(k.stats().anons).toBe(pages);
    k.checkInvariants();
    await k.sync();
    expect((await readFile(file)).equals(pattern(pages * PAGE_SIZE, 8))).toBe(true);
    p.exit();
    await settle(k);
    expect(k.stats()).toMatchObject({ freePages: 12, swapUsed: 0 });
  });

  it('by another fault, behind the sleeping one’s back: the fault retries and maps the anon', async () => {
    const { k, p, va } = await mappedFile(tmp.dir, 'i', 2 * PAGE_SIZE, 9, { prot: RW });
    /* give the entry its amap first (a write to page 1), so filling slot 0 changes no map version */
    await p.write(va + PAGE_SIZE, Buffer.from('1'));
    const e = p.map.entries[0];
    const version = p.map.version;
    k.setIoHook(
      onceOn('vnode-read', () => {
        const anon = uvmAnonAlloc(k.uvm);
        const pg = uvmPageAlloc(k.uvm, null, 0, anon, true)!;
        pg.bytes().write('filled meanwhile');
        pg.flags &= ~PG_CLEAN;
        uvmPageUnbusy(pg);
        uvmPageActivate(pg);
        amapAdd(e.amap!, e.amapSlot, anon, false);
      }),
    );
    expect((await p.read(va, 16)).toString()).toBe('filled meanwhile');
    expect(p.map.version).toBe(version);
    const anonPage = e.amap!.slots[e.amapSlot]!.page!;
    expect(frameAt(p, va)).toBe(anonPage.frame);
    /* the file page read meanwhile stays cached in the object, unmapped */
    expect(e.object!.resident).toBe(2);
    expect(k.stats().busyPages).toBe(0);
    k.checkInvariants();
    p.exit();
    await settle(k);
    expect(k.stats()).toMatchObject({ freePages: 16, anons: 0 });
  });
});

describe('a file mapped again while its old vnode is still writing back', () => {
  it('sees the bytes written through the old mapping', async () => {
    const { file, k, p, va } = await mappedFile(tmp.dir, 'j', PAGE_SIZE, 10, { prot: RW, shared: true });
    await p.write(va, Buffer.from('written before unmap'));
    const gate = deferred();
    k.setIoHook(
      onceOn('vnode-write', async () => {
        await gate.promise;
      }),
    );
    p.munmap(va, PAGE_SIZE);
    let readDone = false;
    const reading = (async () => {
      const vb = await p.mmapFile(file);
      const bytes = await p.read(vb, 20);
      readDone = true;
      return bytes;
    })();
    /* give the new mapping every chance to read the file before the old write-back lands */
    for (let i = 0; i < 200 && !readDone; i++) await ticks(1);
    gate.resolve();
    expect((await reading).toString()).toBe('written before unmap');
    k.checkInvariants();
    p.exit();
    await settle(k);
    expect((await readFile(file)).subarray(0, 20).toString()).toBe('written before unmap');
    expect(k.stats().freePages).toBe(16);
  });
});
