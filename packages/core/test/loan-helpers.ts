/*
 * loan-helpers.ts: small helpers shared by the page loanout tests.
 *
 * Real files in a fresh temporary directory (removed afterwards), page patterns that make every page of
 * every file and buffer distinct, and accessors for what a map entry holds at an address (the anon in
 * its amap slot, the object page) so tests can check owners and counts without reaching further in.
 */
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'vitest';
import {
  type Anon,
  type IoEvent,
  type Kernel,
  KernelError,
  type KernelErrorCode,
  PAGE_SIZE,
  type Proc,
  type VmPage,
} from '../src/index.js';
import type { MapEntry } from '../src/uvm_map.js';

/* A temporary directory for real files; `remove()` deletes it. */
export interface TmpDir {
  dir: string;
  file(name: string, bytes: Uint8Array): Promise<string>;
  remove(): Promise<void>;
}

export async function makeTmpDir(): Promise<TmpDir> {
  const dir = await fs.mkdtemp(`${os.tmpdir()}/loanout-`);
  return {
    dir,
    async file(name, bytes) {
      const p = path.join(dir, name);
      await fs.writeFile(p, bytes);
      return p;
    },
    remove: () => fs.rm(dir, { recursive: true, force: true }),
  };
}

/* pattern: `n` bytes where every page differs from every other page of every other seed. */
export function pattern(seed: number, n: number): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) {
    const page = Math.floor(i / PAGE_SIZE);
    b[i] = (seed * 97 + page * 31 + i * 7 + ((i >> 5) & 0xff)) & 0xff;
  }
  return b;
}

/* fill: one page (or n bytes) of a single byte value */
export function fill(byte: number, n = PAGE_SIZE): Buffer {
  return Buffer.alloc(n, byte);
}

export function entryAt(p: Proc, va: number): MapEntry {
  const e = p.map.lookup(va);
  if (e === null) throw new Error(`test: ${va.toString(16)} is not mapped`);
  return e;
}

/* anonAt: the anon in the amap slot of va, or null */
export function anonAt(p: Proc, va: number): Anon | null {
  const e = entryAt(p, va);
  if (e.amap === null) return null;
  return e.amap.slots[e.amapSlot + Math.floor((va - e.start) / PAGE_SIZE)];
}

/* objectPage: the resident object page behind va, or null */
export function objectPage(p: Proc, va: number): VmPage | null {
  const e = entryAt(p, va);
  if (e.object === null) return null;
  return e.object.pages[e.objOffset + Math.floor((va - e.start) / PAGE_SIZE)] ?? null;
}

/* bytesOf: the bytes of some pages, concatenated (what a borrower sees) */
export function bytesOf(pages: readonly VmPage[]): Buffer {
  return Buffer.concat(pages.map((pg) => pg.bytes()));
}

/* copies: what each page holds now (a copy, to compare later) */
export function snapshot(pages: readonly VmPage[]): Buffer[] {
  return pages.map((pg) => Buffer.from(pg.bytes()));
}

/* expectKernelError: the promise rejects with a KernelError of `code` */
export async function expectKernelError(p: Promise<unknown>, code: KernelErrorCode): Promise<KernelError> {
  let caught: unknown = null;
  try {
    await p;
  } catch (err) {
    caught = err;
  }
  expect(caught).toBeInstanceOf(KernelError);
  expect((caught as KernelError).code).toBe(code);
  return caught as KernelError;
}

/*
 * hookOnce: run `fn` in the middle of the first I/O that `match` accepts (later I/Os run untouched).
 * => returns how many times it fired so far
 */
export function hookOnce(
  k: Kernel,
  match: (ev: IoEvent) => boolean,
  fn: (ev: IoEvent) => Promise<void> | void,
): { fired(): number } {
  let fired = 0;
  k.setIoHook(async (ev) => {
    if (fired > 0 || !match(ev)) return;
    fired++;
    await fn(ev);
  });
  return { fired: () => fired };
}

/* tick: let every pending microtask and one turn of the event loop run */
export function tick(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/*
 * expectAllFree: exit every live process, wait for background work, and check that every page is free
 * and nothing is loaned, wired or orphaned.
 */
export async function expectAllFree(k: Kernel): Promise<void> {
  for (const p of k.processes) p.exit();
  await k.idle();
  k.checkInvariants();
  const s = k.stats();
  expect(s.loanedPages).toBe(0);
  expect(s.wiredPages).toBe(0);
  expect(s.orphanPages).toBe(0);
  expect(s.anons).toBe(0);
  expect(s.freePages).toBe(s.physPages);
  expect(k.uvm.vnodes.size).toBe(0);
  expect(k.uvm.backgroundErrors).toEqual([]);
}

/* hog: a process that writes `npages` pages of anonymous memory (memory pressure); returns it */
export async function hog(k: Kernel, npages: number, byte = 0xee): Promise<Proc> {
  const p = k.createProcess();
  const va = p.mmap(npages * PAGE_SIZE);
  for (let i = 0; i < npages; i++) await p.write(va + i * PAGE_SIZE, fill(byte, 16));
  return p;
}
