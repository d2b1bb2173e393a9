/*
 * sockbuf.ts: a socket's two buffers (NetBSD's struct sockbuf and kern/uipc_socket2.c).
 *
 * The send buffer counts the bytes handed to the host's TCP that it has not yet taken (Node's write
 * callback has not fired): their mbufs, and so their loans, are still alive. A send waits while the
 * buffer is over its high-water mark -- backpressure instead of an ever-growing queue.
 *
 * The receive buffer is a small area of physically contiguous wired kernel pages cut into chunks.
 * Node's `onread` reads from the host socket straight into a chunk (no intermediate buffer); the filled
 * chunk waits in the queue until soreceive copies it out to the user. Node asks for the *next* chunk
 * right after each read (and once at the start), even when it is about to pause, so one free chunk is
 * always "armed" for it; reading pauses (TCP flow control does the rest) when no other chunk is free
 * to arm after the next read, and resumes when soreceive frees one.
 */
import {
  checkKernel,
  type Kernel,
  KernelPanic,
  PAGE_SIZE,
  uvmKmAllocContig,
  uvmKmFreePage,
  type VmPage,
} from '@loanout/core';
import { checkInteger, checkRecvArea } from './sockopt.js';

export class SendBuffer {
  readonly hiwat: number;
  /* bytes queued to the host and not yet written by it */
  cc = 0;
  private readonly waiters: { n: number; resolve: () => void; reject: (e: Error) => void }[] = [];

  /* => hiwat: a positive integer (EINVAL) */
  constructor(hiwat: number) {
    checkInteger('sbreserve', 'high-water mark', hiwat, 1);
    this.hiwat = hiwat;
  }

  /* fits: may n more bytes be queued now? (an empty buffer takes any chunk) */
  fits(n: number): boolean {
    return this.waiters.length === 0 && (this.cc === 0 || this.cc + n <= this.hiwat);
  }

  /* waitSpace: resolve once n bytes fit (sbwait); rejected by abort() */
  waitSpace(n: number): Promise<void> {
    return new Promise((resolve, reject) => this.waiters.push({ n, resolve, reject }));
  }

  add(n: number): void {
    this.cc += n;
  }

  drop(n: number): void {
    this.cc -= n;
    while (this.waiters.length > 0 && (this.cc === 0 || this.cc + this.waiters[0].n <= this.hiwat)) {
      this.waiters.shift()!.resolve();
    }
  }

  abort(err: Error): void {
    for (const w of this.waiters.splice(0)) w.reject(err);
  }
}

export interface RecvChunk {
  view: Buffer;
}

interface Filled {
  chunk: RecvChunk;
  off: number;
  len: number;
}

export class RecvBuffer {
  readonly chunkBytes: number;
  private readonly pages: VmPage[];
  private readonly free: RecvChunk[] = [];
  private readonly queue: Filled[] = [];
  /* the chunk Node will read into next */
  private armed: RecvChunk | null = null;
  /* bytes received and not yet read */
  cc = 0;
  released = false;

  private constructor(kernel: Kernel, pages: VmPage[], chunkBytes: number, chunks: number) {
    this.pages = pages;
    this.chunkBytes = chunkBytes;
    const base = pages[0].frame * PAGE_SIZE;
    for (let i = 0; i < chunks; i++) {
      this.free.push({ view: Buffer.from(kernel.uvm.ram.buffer, base + i * chunkBytes, chunkBytes) });
    }
  }

  /*
   * create: a receive area of `chunks` chunks of chunkBytes (a page multiple) in contiguous kernel memory
   * => throws EINVAL for bad sizes (fewer than 2 chunks, more than the kernel's RAM in all), ENOMEM
   *    when no such run of pages can be had now
   */
  static async create(kernel: Kernel, chunkBytes: number, chunks: number): Promise<RecvBuffer> {
    checkKernel('soreserve', kernel);
    checkRecvArea('soreserve', chunkBytes, chunks, kernel.uvm.pages.length);
    const pages = await uvmKmAllocContig(kernel.uvm, (chunkBytes / PAGE_SIZE) * chunks);
    return new RecvBuffer(kernel, pages, chunkBytes, chunks);
  }

  /*
   * arm: the chunk the host reads into next (onread's buffer function)
   * => panics if none is free: reading should have paused (see filled)
   */
  arm(): Buffer {
    const c = this.free.pop();
    if (c === undefined) throw new KernelPanic('soreceive: no free receive chunk to arm');
    this.armed = c;
    return c.view;
  }

  /*
   * filled: the host read n bytes into the armed chunk buf (onread's callback)
   * => returns whether reading may go on: another chunk must be free to arm after the *next* read
   */
  filled(n: number, buf: Buffer): boolean {
    const c = this.armed;
    if (c === null || c.view.byteOffset !== buf.byteOffset) {
      throw new KernelPanic('soreceive: a read landed outside the armed chunk');
    }
    this.armed = null;
    this.queue.push({ chunk: c, off: 0, len: n });
    this.cc += n;
    return this.free.length >= 2;
  }

  /* canResume: is a chunk free, so that a paused reader may read again? */
  get canResume(): boolean {
    return this.free.length >= 1 && !this.released;
  }

  get empty(): boolean {
    return this.queue.length === 0;
  }

  /* head: the oldest unread bytes (a view), or null */
  head(max: number): Buffer | null {
    const f = this.queue[0];
    if (f === undefined) return null;
    return f.chunk.view.subarray(f.off, f.off + Math.min(max, f.len - f.off));
  }

  /* consume: n bytes of head() were read; returns true if a chunk became free */
  consume(n: number): boolean {
    const f = this.queue[0];
    f.off += n;
    this.cc -= n;
    if (f.off < f.len) return false;
    this.queue.shift();
    this.free.push(f.chunk);
    return true;
  }

  /* discard: drop every byte received and not yet read (a closing socket); returns whether a chunk became free */
  discard(): boolean {
    let freed = false;
    for (let f = this.queue[0]; f !== undefined; f = this.queue[0])
      freed = this.consume(f.len - f.off) || freed;
    return freed;
  }

  /* release: give the area back to the VM system (once) */
  release(): void {
    if (this.released) return;
    this.released = true;
    this.queue.length = 0;
    this.free.length = 0;
    this.cc = 0;
    for (const pg of this.pages) uvmKmFreePage(pg);
  }
}
