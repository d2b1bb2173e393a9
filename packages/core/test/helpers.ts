/*
 * helpers.ts: small shared pieces of the core tests -- a fresh temp directory for real files (per test
 * with useTmpDir), a kernel with a process mapping a new file (mappedFile), byte patterns that differ
 * page by page, and assertions for the kernel's two kinds of failure.
 */
import { constants } from 'node:fs';
import { access, chmod, mkdtemp, open, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, expect } from 'vitest';
import {
  Kernel,
  KernelError,
  type KernelErrorCode,
  type KernelOptions,
  KernelPanic,
  type MmapFileOptions,
  PAGE_SIZE,
  type Proc,
} from '../src/index.js';

/* tmpDir: a fresh directory under the OS temp dir; remove it with removeTmpDir */
export function makeTmpDir(): Promise<string> {
  return mkdtemp(path.join(os.tmpdir(), 'loanout-'));
}

export async function removeTmpDir(dir: string | undefined): Promise<void> {
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
}

/* TmpDir: the directory useTmpDir made for the running test */
export interface TmpDir {
  readonly dir: string;
}

/*
 * useTmpDir: give every test of the enclosing file or describe a fresh temp directory, removed after it.
 * => call where hooks may be registered (top level or in a describe), not inside a test
 * => `dir` throws outside a test or its hooks
 */
export function useTmpDir(): TmpDir {
  let dir: string | undefined;
  beforeEach(async () => {
    dir = await makeTmpDir();
  });
  afterEach(async () => {
    await removeTmpDir(dir);
    dir = undefined;
  });
  return {
    get dir(): string {
      if (dir === undefined) throw new Error('useTmpDir: no test is running');
      return dir;
    },
  };
}

/* MappedFile: what mappedFile made -- the file, the kernel, its process, and where the file is mapped */
export interface MappedFile {
  file: string;
  k: Kernel;
  p: Proc;
  va: number;
}

/*
 * mappedFile: write a real file of `bytes` bytes (pattern(bytes, seed)) as dir/name, boot a kernel and
 * map the file (with mmapFile options `opts`) into a new process.
 * => the kernel has 16 pages of RAM and no swap unless `kernel` says otherwise
 * => the caller exits p (and settles k), so that the kernel closes the file
 */
export async function mappedFile(
  dir: string,
  name: string,
  bytes: number,
  seed: number,
  opts: MmapFileOptions = {},
  kernel: KernelOptions = { physPages: 16, swapPages: 0 },
): Promise<MappedFile> {
  const file = await writeFileOf(dir, name, bytes, seed);
  const k = new Kernel(kernel);
  const p = k.createProcess();
  const va = await p.mmapFile(file, opts);
  return { file, k, p, va };
}

/* pattern: n bytes that depend on seed and position (so pages and offsets differ) */
export function pattern(n: number, seed: number): Buffer {
  const b = Buffer.allocUnsafe(n);
  for (let i = 0; i < n; i++) b[i] = (seed * 131 + i * 7 + (i >> 12) * 13) & 0xff;
  return b;
}

/* writeFileOf: a real file of `bytes` bytes filled with pattern(bytes, seed) */
export async function writeFileOf(dir: string, name: string, bytes: number, seed: number): Promise<string> {
  const file = path.join(dir, name);
  await writeFile(file, pattern(bytes, seed));
  return file;
}

/*
 * readOnlyFile: a real regular file this process cannot open for writing.
 * A chmod 0444 file does it for an ordinary user; root ignores modes, so then it is the running node
 * executable, which Linux refuses to open for writing (ETXTBSY).
 */
export async function readOnlyFile(dir: string): Promise<string> {
  const file = path.join(dir, 'read-only.bin');
  await writeFile(file, pattern(3 * PAGE_SIZE, 99));
  await chmod(file, 0o444);
  for (const candidate of [file, process.execPath]) {
    if (!(await canOpenForWriting(candidate))) return candidate;
  }
  throw new Error('readOnlyFile: found no file this process cannot write');
}

async function canOpenForWriting(file: string): Promise<boolean> {
  try {
    await access(file, constants.R_OK);
    const fh = await open(file, 'r+');
    await fh.close();
    return true;
  } catch {
    return false;
  }
}

/* expectError / expectErrorSync: the call fails with a KernelError carrying `code` */
export async function expectError(p: Promise<unknown>, code: KernelErrorCode): Promise<KernelError> {
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

export function expectErrorSync(fn: () => unknown, code: KernelErrorCode): KernelError {
  let caught: unknown = null;
  try {
    fn();
  } catch (err) {
    caught = err;
  }
  expect(caught).toBeInstanceOf(KernelError);
  expect((caught as KernelError).code).toBe(code);
  return caught as KernelError;
}

export function expectPanic(fn: () => unknown, message?: RegExp): void {
  let caught: unknown = null;
  try {
    fn();
  } catch (err) {
    caught = err;
  }
  expect(caught).toBeInstanceOf(KernelPanic);
  if (message !== undefined) expect((caught as KernelPanic).message).toMatch(message);
}

/* frameAt: the frame a process maps at va, or -1 */
export function frameAt(p: Proc, va: number): number {
  return p.map.pmap.extract(Math.floor(va / PAGE_SIZE));
}

/* settle: wait for background work (pagedaemon passes, vnode write-back) and audit the kernel */
export async function settle(k: Kernel): Promise<void> {
  await k.idle();
  k.checkInvariants();
}

/* deferred: a promise with its resolver outside (to hold an I/O open from an io hook) */
export function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}
