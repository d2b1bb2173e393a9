import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import {
  expectError,
  frameAt,
  mappedFile,
  pattern,
  settle,
  useTmpDir,
  writeFileOf,
} from '../test/helpers.js';
import { Kernel, PAGE_SIZE, Prot, uvmFault, uvmFaultTry, uvmLoan, uvmUnloanPages } from './index.js';

const RW = Prot.READ | Prot.WRITE;

describe('zero-fill', () => {
  it('the first touch of anonymous memory gets a zeroed page, read or write', async () => {
    const k = new Kernel({ physPages: 16, swapPages: 0 });
    /* dirty RAM first, so zeros must come from the fault, not from boot */
    k.uvm.ram.bytes.fill(0xee);
    const p = k.createProcess();
    const va = p.mmap(2 * PAGE_SIZE);
    const s0 = k.stats();
    expect((await p.read(va + 10, 20)).every((b) => b === 0)).toBe(true);
    await p.write(va + PAGE_SIZE + 1, Buffer.from('hi'));
    const page2 = await p.read(va + PAGE_SIZE, PAGE_SIZE);
    expect(page2[0]).toBe(0);
    expect(page2.subarray(1, 3).toString()).toBe('hi');
    expect(page2.subarray(3).every((b) => b === 0)).toBe(true);
    const s1 = k.stats();
    expect(s1.zeroFills - s0.zeroFills).toBe(2);
    expect(s1.faults - s0.faults).toBe(2);
    expect(s1.cowFaults).toBe(0);
    expect(s1.freePages).toBe(14);
    k.checkInvariants();
  });

  it('a resident page costs no fault on the next access', async () => {
    const k = new Kernel({ physPages: 16, swapPages: 0 });
    const p = k.createProcess();
    const va = p.mmap(PAGE_SIZE);
    await p.write(va, Buffer.from('a'));
    const faults = k.stats().faults;
    await p.write(va + 1, Buffer.from('b'));
    expect((await p.read(va, 2)).toString()).toBe('ab');
    expect(k.stats().faults).toBe(faults);
  });

  it('a write spanning pages fills every page it touches', async () => {
    const k = new Kernel({ physPages: 16, swapPages: 0 });
    const p = k.createProcess();
    const va = p.mmap(3 * PAGE_SIZE);
    const data = pattern(PAGE_SIZE + 200, 8);
    await p.write(va + PAGE_SIZE - 100, data);
    expect((await p.read(va + PAGE_SIZE - 100, data.length)).equals(data)).toBe(true);
    expect(k.stats().zeroFills).toBe(3);
  });

  it('uvmFault refuses an unmapped address or a forbidden access with EFAULT', async () => {
    const k = new Kernel({ physPages: 16, swapPages: 0 });
    const p = k.createProcess();
    const ro = p.mmap(PAGE_SIZE, { prot: Prot.READ });
    await expectError(uvmFault(p.map, ro, Prot.WRITE), 'EFAULT');
    await expectError(uvmFault(p.map, ro + 64 * PAGE_SIZE, Prot.READ), 'EFAULT');
    await uvmFault(p.map, ro, Prot.READ);
    expect(p.map.pmap.translate(ro / PAGE_SIZE, Prot.READ)).toBeGreaterThanOrEqual(0);
    expect(p.map.pmap.translate(ro / PAGE_SIZE, Prot.WRITE)).toBe(-1);
    expect(k.stats().freePages).toBe(15);
    k.checkInvariants();
  });

  it('a write-only mapping can be written but not read', async () => {
    const k = new Kernel({ physPages: 16, swapPages: 0 });
    const p = k.createProcess();
    const va = p.mmap(PAGE_SIZE, { prot: Prot.WRITE });
    await p.write(va, Buffer.from('w'));
    await expectError(p.read(va, 1), 'EFAULT');
    p.mprotect(va, PAGE_SIZE, RW);
    expect((await p.read(va, 1)).toString()).toBe('w');
  });
});

describe('copy-on-write after fork', () => {
  it('parent writes first: the child keeps the old bytes', async () => {
    const k = new Kernel({ physPages: 32, swapPages: 0 });
    const p = k.createProcess();
    const va = p.mmap(2 * PAGE_SIZE);
    const data = pattern(2 * PAGE_SIZE, 9);
    await p.write(va, data);
    const free0 = k.stats().freePages;
    const c = p.fork();
    expect(k.stats().freePages).toBe(free0);
    expect((await c.read(va, 2 * PAGE_SIZE)).equals(data)).toBe(true);
    expect(frameAt(c, va)).toBe(frameAt(p, va));
    expect(k.stats().freePages).toBe(free0);
    const cow0 = k.stats().cowFaults;
    await p.write(va + 3, Buffer.from('PARENT'));
    expect(k.stats().cowFaults).toBe(cow0 + 1);
    expect(k.stats().freePages).toBe(free0 - 1);
    expect(frameAt(c, va)).not.toBe(frameAt(p, va));
    expect((await c.read(va, 2 * PAGE_SIZE)).equals(data)).toBe(true);
    expect((await p.read(va + 3, 6)).toString()).toBe('PARENT');
    /* the other page is still shared */
    expect(frameAt(c, va + PAGE_SIZE)).toBe(frameAt(p, va + PAGE_SIZE));
    k.checkInvariants();
  });

  it('child writes first: the parent keeps the old bytes', async () => {
    const k = new Kernel({ physPages: 32, swapPages: 0 });
    const p = k.createProcess();
    const va = p.mmap(PAGE_SIZE);
    await p.write(va, Buffer.from('original'));
    const c = p.fork();
    await c.write(va, Buffer.from('CHILD'));
    expect((await p.read(va, 8)).toString()).toBe('original');
    expect((await c.read(va, 8)).toString()).toBe('CHILDnal');
    /* the parent, now sole owner of its anon, writes in place: no second copy */
    const cow = k.stats().cowFaults;
    const free = k.stats().freePages;
    await p.write(va, Buffer.from('P'));
    expect(k.stats().freePages).toBe(free);
    expect(k.stats().cowFaults).toBe(cow);
    expect((await p.read(va, 8)).toString()).toBe('Priginal');
    expect((await c.read(va, 8)).toString()).toBe('CHILDnal');
    k.checkInvariants();
  });

  it('pages never touched before fork are zero-filled separately in each', async () => {
    const k = new Kernel({ physPages: 32, swapPages: 0 });
    const p = k.createProcess();
    const va = p.mmap(PAGE_SIZE);
    const c = p.fork();
    await c.write(va, Buffer.from('c'));
    expect((await p.read(va, 1))[0]).toBe(0);
    await p.write(va, Buffer.from('p'));
    expect((await c.read(va, 1)).toString()).toBe('c');
    k.checkInvariants();
  });

  it('exit of one side leaves the other side its bytes and frees only what nobody uses', async () => {
    const k = new Kernel({ physPages: 32, swapPages: 0 });
    const p = k.createProcess();
    const va = p.mmap(2 * PAGE_SIZE);
    await p.write(va, pattern(2 * PAGE_SIZE, 10));
    const c = p.fork();
    await c.write(va, Buffer.from('x'));
    expect(k.stats().freePages).toBe(29);
    p.exit();
    expect(k.stats().freePages).toBe(30);
    const got = await c.read(va, 2 * PAGE_SIZE);
    expect(got[0]).toBe('x'.charCodeAt(0));
    expect(got.subarray(1).equals(pattern(2 * PAGE_SIZE, 10).subarray(1))).toBe(true);
    c.exit();
    expect(k.stats().freePages).toBe(32);
    expect(k.stats().anons).toBe(0);
    k.checkInvariants();
  });
});

describe('file mappings', () => {
  const tmp = useTmpDir();

  it('a private mapping reads the file and promotes on write, leaving the file alone', async () => {
    const { file, k, p, va } = await mappedFile(tmp.dir, 'priv', 2 * PAGE_SIZE, 11, { prot: RW });
    expect((await p.read(va, 2 * PAGE_SIZE)).equals(pattern(2 * PAGE_SIZE, 11))).toBe(true);
    expect(k.stats().pageins).toBe(2);
    const objFrame = frameAt(p, va);
    const cow0 = k.stats().cowFaults;
    await p.write(va + 7, Buffer.from('private'));
    expect(k.stats().cowFaults).toBe(cow0 + 1);
    expect(frameAt(p, va)).not.toBe(objFrame);
    expect(k.uvm.pages[objFrame].uobject).not.toBeNull();
    expect((await p.read(va + 7, 7)).toString()).toBe('private');

    /* another process sees the file, not our private copy */
    const q = k.createProcess();
    const vb = await q.mmapFile(file);
    expect((await q.read(vb, 2 * PAGE_SIZE)).equals(pattern(2 * PAGE_SIZE, 11))).toBe(true);
    expect(frameAt(q, vb)).toBe(objFrame);

    await k.sync();
    expect((await readFile(file)).equals(pattern(2 * PAGE_SIZE, 11))).toBe(true);
    p.exit();
    q.exit();
    await settle(k);
    expect((await readFile(file)).equals(pattern(2 * PAGE_SIZE, 11))).toBe(true);
    expect(k.stats().freePages).toBe(16);
  });

  it('a private mapping forked after a write: each side keeps its own copy', async () => {
    const { file, k, p, va } = await mappedFile(tmp.dir, 'privfork', PAGE_SIZE, 12, { prot: RW });
    await p.write(va, Buffer.from('P1'));
    const c = p.fork();
    await c.write(va, Buffer.from('C'));
    expect((await p.read(va, 2)).toString()).toBe('P1');
    expect((await c.read(va, 2)).toString()).toBe('C1');
    await p.write(va + 2, Buffer.from('!'));
    expect((await c.read(va + 2, 1))[0]).toBe(pattern(PAGE_SIZE, 12)[2]);
    p.exit();
    c.exit();
    await settle(k);
    expect((await readFile(file)).equals(pattern(PAGE_SIZE, 12))).toBe(true);
    expect(k.stats().freePages).toBe(16);
  });

  it('a shared mapping writes reach the file after sync, and other mappings see them at once', async () => {
    const file = await writeFileOf(tmp.dir, 'shared', 3 * PAGE_SIZE, 13);
    const k = new Kernel({ physPages: 16, swapPages: 0 });
    const p = k.createProcess();
    const q = k.createProcess();
    const va = await p.mmapFile(file, { prot: RW, shared: true });
    const vb = await q.mmapFile(file, { shared: true });
    await p.write(va + PAGE_SIZE + 5, Buffer.from('SHARED'));
    expect((await q.read(vb + PAGE_SIZE + 5, 6)).toString()).toBe('SHARED');
    expect(frameAt(q, vb + PAGE_SIZE)).toBe(frameAt(p, va + PAGE_SIZE));
    expect(k.stats().cowFaults).toBe(0);
    await k.sync();
    const want = pattern(3 * PAGE_SIZE, 13);
    Buffer.from('SHARED').copy(want, PAGE_SIZE + 5);
    expect((await readFile(file)).equals(want)).toBe(true);
    /* written back: the next write dirties it again */
    await p.write(va, Buffer.from('again'));
    await k.sync();
    Buffer.from('again').copy(want, 0);
    expect((await readFile(file)).equals(want)).toBe(true);
    p.exit();
    q.exit();
    await settle(k);
    expect(k.stats().freePages).toBe(16);
  });

  it('a shared mapping written and unmapped without sync is written back in the background', async () => {
    const { file, k, p, va } = await mappedFile(tmp.dir, 'late', PAGE_SIZE, 14, { prot: RW, shared: true });
    await p.write(va + 100, Buffer.from('bye'));
    p.munmap(va, PAGE_SIZE);
    await k.sync();
    const got = await readFile(file);
    expect(got.subarray(100, 103).toString()).toBe('bye');
    expect(k.uvm.vnodes.size).toBe(0);
    expect(k.stats().freePages).toBe(16);
    k.checkInvariants();
  });

  it('bytes past the end of the file read as zeros and never reach the file', async () => {
    const { file, k, p, va } = await mappedFile(tmp.dir, 'short', PAGE_SIZE + 10, 15, {
      prot: RW,
      shared: true,
    });
    expect(p.map.entries[0].end - p.map.entries[0].start).toBe(2 * PAGE_SIZE);
    const tail = await p.read(va + PAGE_SIZE, PAGE_SIZE);
    expect(tail.subarray(0, 10).equals(pattern(PAGE_SIZE + 10, 15).subarray(PAGE_SIZE))).toBe(true);
    expect(tail.subarray(10).every((b) => b === 0)).toBe(true);
    await p.write(va + PAGE_SIZE + 5, Buffer.from('0123456789'));
    await k.sync();
    const got = await readFile(file);
    expect(got.length).toBe(PAGE_SIZE + 10);
    expect(got.subarray(PAGE_SIZE + 5).toString()).toBe('01234');
    p.exit();
    await settle(k);
  });

  it('a page wholly beyond the end of the file cannot be faulted in (EFAULT)', async () => {
    const { k, p, va } = await mappedFile(tmp.dir, 'tiny', 100, 16, { length: 3 * PAGE_SIZE });
    expect((await p.read(va, 100)).equals(pattern(100, 16))).toBe(true);
    const free = k.stats().freePages;
    await expectError(p.read(va + PAGE_SIZE, 1), 'EFAULT');
    expect(k.stats().freePages).toBe(free);
    k.checkInvariants();
    p.exit();
    await settle(k);
    expect(k.stats().freePages).toBe(16);
  });

  it('an offset mapping sees the file from that offset', async () => {
    const { k, p, va } = await mappedFile(tmp.dir, 'off', 4 * PAGE_SIZE, 17, {
      offset: 2 * PAGE_SIZE,
      length: PAGE_SIZE + 1,
    });
    expect(p.map.size).toBe(2 * PAGE_SIZE);
    expect((await p.read(va, 2 * PAGE_SIZE)).equals(pattern(4 * PAGE_SIZE, 17).subarray(2 * PAGE_SIZE))).toBe(
      true,
    );
    p.exit();
    await settle(k);
  });
});

describe('shared anonymous memory', () => {
  it('parent and child see each other’s writes after fork', async () => {
    const k = new Kernel({ physPages: 16, swapPages: 0 });
    const p = k.createProcess();
    const va = p.mmap(2 * PAGE_SIZE, { shared: true });
    await p.write(va, Buffer.from('before'));
    const c = p.fork();
    expect((await c.read(va, 6)).toString()).toBe('before');
    await c.write(va + PAGE_SIZE, Buffer.from('from child'));
    expect((await p.read(va + PAGE_SIZE, 10)).toString()).toBe('from child');
    await p.write(va, Buffer.from('AFTER!'));
    expect((await c.read(va, 6)).toString()).toBe('AFTER!');
    expect(k.stats().cowFaults).toBe(0);
    expect(k.stats().freePages).toBe(14);
    p.exit();
    expect((await c.read(va, 6)).toString()).toBe('AFTER!');
    c.exit();
    expect(k.stats().freePages).toBe(16);
    k.checkInvariants();
  });
});

describe('uvmFaultTry: faults resolved without sleeping', () => {
  it('gives write access back to a page whose loans have ended, with no copy and no new page', async () => {
    const k = new Kernel({ physPages: 32 });
    const p = k.createProcess();
    const va = p.mmap(2 * PAGE_SIZE);
    await p.write(va, Buffer.alloc(2 * PAGE_SIZE, 7));
    const frame = p.map.pmap.extract(va / PAGE_SIZE);
    uvmUnloanPages(await uvmLoan(p.map, va, 2 * PAGE_SIZE, 'kernel'));
    expect(p.map.pmap.protAt(va / PAGE_SIZE) & Prot.WRITE).toBe(0);
    const before = k.stats();
    expect(uvmFaultTry(p.map, va, Prot.WRITE)).toBe(true);
    const after = k.stats();
    expect(p.map.pmap.protAt(va / PAGE_SIZE) & Prot.WRITE).toBe(Prot.WRITE);
    expect(p.map.pmap.extract(va / PAGE_SIZE)).toBe(frame);
    expect(after.faults).toBe(before.faults + 1);
    expect([after.cowFaults, after.loanBreaks, after.freePages]).toEqual([
      before.cowFaults,
      before.loanBreaks,
      before.freePages,
    ]);
    k.checkInvariants();
    p.exit();
  });

  it('declines (false, nothing done) what needs a copy or a page: a loaned page, a shared anon, untouched memory', async () => {
    const k = new Kernel({ physPages: 32 });
    const p = k.createProcess();
    const va = p.mmap(3 * PAGE_SIZE);
    await p.write(va, Buffer.alloc(2 * PAGE_SIZE, 7));
    const pages = await uvmLoan(p.map, va, PAGE_SIZE, 'kernel');
    const child = p.fork();
    const before = k.stats();
    expect(uvmFaultTry(p.map, va, Prot.WRITE)).toBe(false);
    expect(uvmFaultTry(p.map, va + PAGE_SIZE, Prot.WRITE)).toBe(false);
    expect(uvmFaultTry(p.map, va + 2 * PAGE_SIZE, Prot.READ)).toBe(false);
    expect(k.stats()).toEqual(before);
    await p.write(va, Buffer.from([1]));
    expect(pages[0].bytes()[0]).toBe(7);
    uvmUnloanPages(pages);
    k.checkInvariants();
    child.exit();
    p.exit();
    expect(k.stats().freePages).toBe(32);
  });

  it('throws EFAULT for an unmapped address or a forbidden access, like uvmFault', async () => {
    const k = new Kernel({ physPages: 16 });
    const p = k.createProcess();
    const va = p.mmap(PAGE_SIZE, { prot: Prot.READ });
    expect(() => uvmFaultTry(p.map, va + 8 * PAGE_SIZE, Prot.READ)).toThrow(
      expect.objectContaining({ code: 'EFAULT' }),
    );
    expect(() => uvmFaultTry(p.map, va, Prot.WRITE)).toThrow(expect.objectContaining({ code: 'EFAULT' }));
    await expect(uvmFault(p.map, va, Prot.WRITE)).rejects.toMatchObject({ code: 'EFAULT' });
    p.exit();
  });
});
