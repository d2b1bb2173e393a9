/*
 * helpers.ts: shared pieces of the mbuf tests -- byte patterns, a user process with memory in it,
 * the counters a failed call must leave alone, and assertions for the kernel's two kinds of failure.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import {
  type Kernel,
  KernelError,
  type KernelErrorCode,
  KernelPanic,
  PAGE_SIZE,
  type Proc,
} from '@loanout/core';
import { expect } from 'vitest';
import { type Mbuf, mBuffers, mbufStats } from '../src/index.js';

/* pattern: n bytes that depend on seed and position (pages and offsets differ) */
export function pattern(n: number, seed: number): Buffer {
  const b = Buffer.allocUnsafe(n);
  for (let i = 0; i < n; i++) b[i] = (seed * 131 + i * 7 + (i >> 12) * 13 + 1) & 0xff;
  return b;
}

/* userMemory: npages of anonymous memory in p, filled with pattern(npages pages, seed) */
export async function userMemory(p: Proc, npages: number, seed: number): Promise<number> {
  const va = p.mmap(npages * PAGE_SIZE);
  await p.write(va, pattern(npages * PAGE_SIZE, seed));
  return va;
}

/* chainBytes: a chain's data as the network would send it (the views, concatenated) */
export function chainBytes(m: Mbuf): Buffer {
  return Buffer.concat(mBuffers(m));
}

/* the counters no failed call may change */
export interface Counters {
  loanedPages: number;
  wiredPages: number;
  kvaPagesInUse: number;
  clustersInUse: number;
  kernelVaPages: number;
}

export function counters(k: Kernel): Counters {
  const s = k.stats();
  const m = mbufStats(k);
  return {
    loanedPages: s.loanedPages,
    wiredPages: s.wiredPages,
    kvaPagesInUse: m.kvaPagesInUse,
    clustersInUse: m.clustersInUse,
    kernelVaPages: s.kernelVaPages,
  };
}

/* expectError: the promise (or call) fails with a KernelError carrying `code` */
export async function expectError(
  p: Promise<unknown> | (() => unknown),
  code: KernelErrorCode,
): Promise<void> {
  let caught: unknown = null;
  try {
    await (typeof p === 'function' ? p() : p);
  } catch (err) {
    caught = err;
  }
  expect(caught).toBeInstanceOf(KernelError);
  expect((caught as KernelError).code).toBe(code);
}

/* expectPanic: the call throws a KernelPanic whose message matches `re` */
export function expectPanic(fn: () => unknown, re: RegExp): void {
  let caught: unknown = null;
  try {
    fn();
  } catch (err) {
    caught = err;
  }
  expect(caught).toBeInstanceOf(KernelPanic);
  expect((caught as KernelPanic).message).toMatch(re);
}

/* settled: has the promise settled yet? (looks after letting pending callbacks run) */
export async function settled(p: Promise<unknown>): Promise<boolean> {
  let done = false;
  p.then(
    () => {
      done = true;
    },
    () => {
      done = true;
    },
  );
  await new Promise<void>((r) => setImmediate(r));
  return done;
}

/* tmp dirs holding real files for file-backed memory */
export function makeTmpDir(): Promise<string> {
  return mkdtemp(path.join(os.tmpdir(), 'loanout-mbuf-'));
}

export async function removeTmpDir(dir: string | undefined): Promise<void> {
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
}

export async function writeFileOf(dir: string, name: string, bytes: Buffer): Promise<string> {
  const file = path.join(dir, name);
  await writeFile(file, bytes);
  return file;
}
