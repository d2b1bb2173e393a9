import { describe, expect, it } from 'vitest';
import {
  expectError,
  expectErrorSync,
  mappedFile,
  pattern,
  settle,
  useTmpDir,
  writeFileOf,
} from '../test/helpers.js';
import { Inherit, Kernel, type MmapOptions, PAGE_SIZE, Prot, VM_MAX_ADDRESS } from './index.js';

const RW = Prot.READ | Prot.WRITE;

describe('processes', () => {
  it('get increasing pids and are listed by the kernel until they exit', () => {
    const k = new Kernel({ physPages: 8, swapPages: 0 });
    const a = k.createProcess();
    const b = k.createProcess();
    const c = a.fork();
    expect(b.pid).toBeGreaterThan(a.pid);
    expect(c.pid).toBeGreaterThan(b.pid);
    expect(k.processes).toEqual([a, b, c]);
    expect(k.stats().processes).toBe(3);
    b.exit();
    expect(b.exited).toBe(true);
    expect(b.map.dead).toBe(true);
    expect(k.processes).toEqual([a, c]);
    expect(k.stats().processes).toBe(2);
  });

  it('exit frees everything the process alone held', async () => {
    const k = new Kernel({ physPages: 16, swapPages: 0 });
    const p = k.createProcess();
    const a = p.mmap(3 * PAGE_SIZE);
    const b = p.mmap(2 * PAGE_SIZE, { shared: true });
    await p.write(a, pattern(3 * PAGE_SIZE, 1));
    await p.write(b, pattern(2 * PAGE_SIZE, 2));
    expect(k.stats().freePages).toBe(11);
    p.exit();
    expect(p.map.entries).toHaveLength(0);
    expect(p.map.pmap.resident).toBe(0);
    expect(k.stats()).toMatchObject({ freePages: 16, anons: 0, activePages: 0 });
    expect(k.uvm.amaps).toBe(0);
    k.checkInvariants();
  });

  it('every call on an exited process fails with ESRCH', async () => {
    const k = new Kernel({ physPages: 8, swapPages: 0 });
    const p = k.createProcess();
    const va = p.mmap(PAGE_SIZE);
    p.exit();
    expectErrorSync(() => p.mmap(PAGE_SIZE), 'ESRCH');
    expectErrorSync(() => p.munmap(va, PAGE_SIZE), 'ESRCH');
    expectErrorSync(() => p.mprotect(va, PAGE_SIZE, Prot.READ), 'ESRCH');
    expectErrorSync(() => p.fork(), 'ESRCH');
    expectErrorSync(() => p.exit(), 'ESRCH');
    await expectError(p.read(va, 1), 'ESRCH');
    await expectError(p.write(va, Buffer.from('x')), 'ESRCH');
    await expectError(p.mmapFile('/nonexistent'), 'ESRCH');
    expect(k.stats()).toMatchObject({ freePages: 8, processes: 0 });
  });
});

describe('read and write', () => {
  it('round-trip bytes at any offset and length', async () => {
    const k = new Kernel({ physPages: 16, swapPages: 0 });
    const p = k.createProcess();
    const va = p.mmap(4 * PAGE_SIZE);
    const data = pattern(2 * PAGE_SIZE + 123, 3);
    await p.write(va + 777, data);
    expect((await p.read(va + 777, data.length)).equals(data)).toBe(true);
    expect((await p.read(va + 778, 5)).equals(data.subarray(1, 6))).toBe(true);
    expect((await p.read(va, 777)).every((b) => b === 0)).toBe(true);
  });

  it('of zero bytes succeed without touching memory', async () => {
    const k = new Kernel({ physPages: 8, swapPages: 0 });
    const p = k.createProcess();
    const va = p.mmap(PAGE_SIZE);
    expect(await p.read(va, 0)).toHaveLength(0);
    await p.write(va, new Uint8Array(0));
    expect(k.stats()).toMatchObject({ faults: 0, freePages: 8 });
  });

  it('accept any Uint8Array, not only Buffers', async () => {
    const k = new Kernel({ physPages: 8, swapPages: 0 });
    const p = k.createProcess();
    const va = p.mmap(PAGE_SIZE);
    await p.write(va, new Uint8Array([1, 2, 3]));
    expect([...(await p.read(va, 3))]).toEqual([1, 2, 3]);
  });

  it('refuse a range that is not all mapped with EFAULT, reading and writing nothing', async () => {
    const k = new Kernel({ physPages: 8, swapPages: 0 });
    const p = k.createProcess();
    const a = p.mmap(PAGE_SIZE);
    const b = p.mmap(PAGE_SIZE);
    p.munmap(b, PAGE_SIZE);
    await expectError(p.read(a, PAGE_SIZE + 1), 'EFAULT');
    await expectError(p.write(a + 10, Buffer.alloc(PAGE_SIZE, 7)), 'EFAULT');
    await expectError(p.read(b, 1), 'EFAULT');
    await expectError(p.read(0, 1), 'EFAULT');
    await expectError(p.read(VM_MAX_ADDRESS - 1, 2), 'EFAULT');
    expect(k.stats()).toMatchObject({ freePages: 8, faults: 0 });
    expect((await p.read(a, PAGE_SIZE)).every((x) => x === 0)).toBe(true);
  });

  it('a write that would cross into read-only memory writes nothing at all', async () => {
    const k = new Kernel({ physPages: 8, swapPages: 0 });
    const p = k.createProcess();
    const va = p.mmap(2 * PAGE_SIZE);
    await p.write(va, Buffer.from('keep'));
    p.mprotect(va + PAGE_SIZE, PAGE_SIZE, Prot.READ);
    await expectError(p.write(va, Buffer.alloc(PAGE_SIZE + 1, 0x41)), 'EFAULT');
    expect((await p.read(va, 4)).toString()).toBe('keep');
    expect(k.stats().freePages).toBe(7);
  });

  it.each([
    ['a negative address', -PAGE_SIZE, 1],
    ['a NaN address', Number.NaN, 1],
    ['a fractional address', 65536.5, 1],
    ['a negative length', 0x10000, -1],
    ['a NaN length', 0x10000, Number.NaN],
    ['a fractional length', 0x10000, 1.5],
    ['a huge length', 0x10000, 2 ** 40],
  ])('read refuses %s with EINVAL', async (_what, va, n) => {
    const k = new Kernel({ physPages: 8, swapPages: 0 });
    const p = k.createProcess();
    p.mmap(PAGE_SIZE);
    await expectError(p.read(va, n), 'EINVAL');
    expect(k.stats().freePages).toBe(8);
  });

  it('write refuses a bad address or something that is not bytes with EINVAL', async () => {
    const k = new Kernel({ physPages: 8, swapPages: 0 });
    const p = k.createProcess();
    const va = p.mmap(PAGE_SIZE);
    await expectError(p.write(-1, Buffer.from('x')), 'EINVAL');
    await expectError(p.write(Number.NaN, Buffer.from('x')), 'EINVAL');
    await expectError(p.write(va, 'text' as unknown as Uint8Array), 'EINVAL');
    await expectError(p.write(va, [1, 2] as unknown as Uint8Array), 'EINVAL');
    await expectError(p.write(va, null as unknown as Uint8Array), 'EINVAL');
    expect(k.stats().freePages).toBe(8);
  });
});

describe('mmap arguments', () => {
  it.each([0, -1, Number.NaN, 1.5, 2 ** 40, Number.POSITIVE_INFINITY])(
    'refuses length %s with EINVAL',
    (len) => {
      const k = new Kernel({ physPages: 8, swapPages: 0 });
      const p = k.createProcess();
      expectErrorSync(() => p.mmap(len), 'EINVAL');
      expect(p.map.entries).toHaveLength(0);
    },
  );

  it.each([
    ['prot 8', { prot: 8 }],
    ['prot -1', { prot: -1 }],
    ['prot 1.5', { prot: 1.5 }],
    ['an unknown inheritance', { inherit: 'maybe' }],
    ['null options', null],
    ['numeric options', 5],
  ])('refuses %s with EINVAL', (_what, opts) => {
    const k = new Kernel({ physPages: 8, swapPages: 0 });
    const p = k.createProcess();
    expectErrorSync(() => p.mmap(PAGE_SIZE, opts as unknown as MmapOptions), 'EINVAL');
    expect(p.map.entries).toHaveLength(0);
    expect(k.stats().freePages).toBe(8);
  });

  it('takes the protection it is given', async () => {
    const k = new Kernel({ physPages: 8, swapPages: 0 });
    const p = k.createProcess();
    const none = p.mmap(PAGE_SIZE, { prot: Prot.NONE });
    const ro = p.mmap(PAGE_SIZE, { prot: Prot.READ });
    const rw = p.mmap(PAGE_SIZE, { inherit: Inherit.COPY });
    expect(p.map.entries.map((e) => e.prot)).toEqual([Prot.NONE, Prot.READ, RW]);
    await expectError(p.read(none, 1), 'EFAULT');
    expect((await p.read(ro, 1))[0]).toBe(0);
    await expectError(p.write(ro, Buffer.from('x')), 'EFAULT');
    await p.write(rw, Buffer.from('x'));
  });
});

describe('munmap and mprotect arguments', () => {
  it.each([
    ['an unaligned address', 0x10001, PAGE_SIZE],
    ['a negative address', -PAGE_SIZE, PAGE_SIZE],
    ['a NaN address', Number.NaN, PAGE_SIZE],
    ['a zero length', 0x10000, 0],
    ['a negative length', 0x10000, -PAGE_SIZE],
    ['a NaN length', 0x10000, Number.NaN],
    ['a huge length', 0x10000, 2 ** 40],
  ])('munmap and mprotect refuse %s with EINVAL, changing nothing', async (_what, va, len) => {
    const k = new Kernel({ physPages: 8, swapPages: 0 });
    const p = k.createProcess();
    const m = p.mmap(PAGE_SIZE);
    await p.write(m, Buffer.from('x'));
    expectErrorSync(() => p.munmap(va, len), 'EINVAL');
    expectErrorSync(() => p.mprotect(va, len, Prot.READ), 'EINVAL');
    expect(p.map.entries).toHaveLength(1);
    expect(p.map.entries[0].prot).toBe(RW);
    expect(k.stats().freePages).toBe(7);
  });

  it('mprotect refuses bad protection bits with EINVAL', () => {
    const k = new Kernel({ physPages: 8, swapPages: 0 });
    const p = k.createProcess();
    const va = p.mmap(PAGE_SIZE);
    for (const prot of [8, -1, 1.5, Number.NaN])
      expectErrorSync(() => p.mprotect(va, PAGE_SIZE, prot), 'EINVAL');
    expect(p.map.entries[0].prot).toBe(RW);
  });
});

describe('mmapFile arguments', () => {
  const tmp = useTmpDir();

  it('defaults to a private read-only mapping of the whole file', async () => {
    const { k, p, va } = await mappedFile(
      tmp.dir,
      'f',
      2 * PAGE_SIZE + 1,
      9,
      {},
      { physPages: 8, swapPages: 0 },
    );
    const e = p.map.entries[0];
    expect([e.start, e.end, e.prot, e.copyOnWrite]).toEqual([va, va + 3 * PAGE_SIZE, Prot.READ, true]);
    await expectError(p.write(va, Buffer.from('x')), 'EFAULT');
    p.exit();
    await settle(k);
  });

  it.each([
    ['null options', null],
    ['a string as options', 'rw'],
  ])('refuses %s with EINVAL', async (_what, opts) => {
    const file = await writeFileOf(tmp.dir, 'f', PAGE_SIZE, 9);
    const k = new Kernel({ physPages: 8, swapPages: 0 });
    const p = k.createProcess();
    await expectError(p.mmapFile(file, opts as unknown as MmapOptions), 'EINVAL');
    await settle(k);
    expect(k.uvm.vnodes.size).toBe(0);
  });

  it('refuses a path that is not a string with EINVAL', async () => {
    const k = new Kernel({ physPages: 8, swapPages: 0 });
    const p = k.createProcess();
    await expectError(p.mmapFile(42 as unknown as string), 'EINVAL');
  });
});

describe('watch', () => {
  it('calls the watcher after munmap, mprotect and exit, until it stops watching', async () => {
    const k = new Kernel({ physPages: 32 });
    const p = k.createProcess();
    const va = p.mmap(4 * PAGE_SIZE);
    const seen: string[] = [];
    const stop = p.watch(() => seen.push(p.exited ? 'exited' : String(p.map.entries.length)));
    p.mmap(PAGE_SIZE);
    p.mprotect(va, PAGE_SIZE, Prot.READ);
    p.munmap(va, PAGE_SIZE);
    expect(seen).toEqual(['3', '2']);
    stop();
    stop();
    p.munmap(va + PAGE_SIZE, PAGE_SIZE);
    expect(seen).toHaveLength(2);
    p.watch(() => seen.push(p.exited ? 'exited' : 'alive'));
    p.exit();
    expect(seen).toEqual(['3', '2', 'exited']);
    k.checkInvariants();
  });

  it('refuses a watcher that is not a function (EINVAL); one that throws is dropped with a warning', async () => {
    const k = new Kernel({ physPages: 32 });
    const p = k.createProcess();
    expectErrorSync(() => p.watch(7 as never), 'EINVAL');
    const warned = new Promise<Error>((r) => process.once('warning', r));
    let calls = 0;
    p.watch(() => {
      calls++;
      throw new Error('boom');
    });
    const va = p.mmap(PAGE_SIZE);
    p.munmap(va, PAGE_SIZE);
    p.munmap(va, PAGE_SIZE);
    expect(calls).toBe(1);
    expect((await warned).message).toMatch(/process watcher threw \(boom\)/);
    p.exit();
    k.checkInvariants();
  });
});

describe('copyinPhysNow', () => {
  it('hands over every byte when all is mapped, and stops (false) before a page that needs a fault', async () => {
    const k = new Kernel({ physPages: 32 });
    const p = k.createProcess();
    const va = p.mmap(3 * PAGE_SIZE);
    const data = pattern(2 * PAGE_SIZE, 2);
    await p.write(va, data);
    const got = Buffer.alloc(3 * PAGE_SIZE);
    const sink = (at: number, done: number, n: number) => {
      got.set(k.uvm.ram.bytes.subarray(at, at + n), done);
    };
    expect(p.copyinPhysNow(va + 10, 2 * PAGE_SIZE - 10, sink)).toBe(true);
    expect(got.subarray(0, 2 * PAGE_SIZE - 10).equals(data.subarray(10))).toBe(true);
    /* the third page was never touched: reading it needs a zero-fill, which may sleep */
    let seen = 0;
    expect(p.copyinPhysNow(va, 3 * PAGE_SIZE, (_a, _d, n) => (seen += n))).toBe(false);
    expect(seen).toBe(2 * PAGE_SIZE);
    expectErrorSync(() => p.copyinPhysNow(va, 4 * PAGE_SIZE, sink), 'EFAULT');
    expectErrorSync(() => p.copyinPhysNow(va, 1, 7 as never), 'EINVAL');
    p.exit();
    expectErrorSync(() => p.copyinPhysNow(va, 1, sink), 'ESRCH');
    k.checkInvariants();
  });
});

describe('copyoutPhys', () => {
  it('hands every piece to the source at once when all is mapped writable, else faults in what it needs and settles', async () => {
    const k = new Kernel({ physPages: 32 });
    const p = k.createProcess();
    const va = p.mmap(3 * PAGE_SIZE);
    await p.write(va, Buffer.alloc(2 * PAGE_SIZE, 1));
    const data = pattern(3 * PAGE_SIZE, 4);
    const ram = k.uvm.ram.bytes;
    const pieces: number[] = [];
    const source = (at: number, done: number, n: number) => {
      pieces.push(n);
      ram.set(data.subarray(done, done + n), at);
    };
    expect(p.copyoutPhys(va + 10, 2 * PAGE_SIZE - 10, source)).toBeUndefined();
    expect(pieces).toEqual([PAGE_SIZE - 10, PAGE_SIZE]);
    expect((await p.read(va + 10, 2 * PAGE_SIZE - 10)).equals(data.subarray(0, 2 * PAGE_SIZE - 10))).toBe(
      true,
    );
    /* a forked child shares the pages copy-on-write, and the third page was never touched */
    const c = p.fork();
    const moving = p.copyoutPhys(va, 3 * PAGE_SIZE, source);
    expect(moving).toBeInstanceOf(Promise);
    await moving;
    expect((await p.read(va, 3 * PAGE_SIZE)).equals(data)).toBe(true);
    expect((await c.read(va + 10, 2 * PAGE_SIZE - 10)).equals(data.subarray(0, 2 * PAGE_SIZE - 10))).toBe(
      true,
    );
    p.mprotect(va + 2 * PAGE_SIZE, PAGE_SIZE, Prot.READ);
    pieces.length = 0;
    expectErrorSync(() => p.copyoutPhys(va, 3 * PAGE_SIZE, source), 'EFAULT');
    expect(pieces).toEqual([]);
    expectErrorSync(() => p.copyoutPhys(va, 1, 7 as never), 'EINVAL');
    c.exit();
    p.exit();
    expectErrorSync(() => p.copyoutPhys(va, 1, source), 'ESRCH');
    k.checkInvariants();
  });
});
