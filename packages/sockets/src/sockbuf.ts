/*
 * sockbuf.ts: a socket's two buffers (NetBSD's struct sockbuf and kern/uipc_socket2.c).
 *
 * The send buffer counts the bytes handed to the host's TCP that it has not yet taken (node:net still
 * holds them, or Node has not called back a write the host socket did not take as it was written):
 * their mbufs, and so their loans, are still alive. A send waits while the
 * buffer is over its high-water mark -- backpressure instead of an ever-growing queue.
 *
 * The receive buffer is a small area of wired kernel pages cut into chunks, each one physically
 * contiguous run. Node's `onread` reads from the host socket straight into a chunk (no intermediate
 * buffer), each read appending to the chunk until it is full. Every read starts a page: one that ends
 * mid-page leaves the rest of that page unused (a hole) and the next read goes to the next page -- as
 * a network card puts each packet in buffers of its own -- so that a page holding the end of a read
 * is never written again and can move to a process as it is, with the rest of it zeroed (recv's
 * `tail: 'zero-fill'`). The cost: a read ends where the host socket had no more bytes -- at pauses,
 * and on 127.0.0.1 often mid-page even in a steady stream (a third of the reads of one 16 MiB stream,
 * measured) -- and each such read leaves up to a page unused, and with tail 'copy' a partly filled
 * page to copy (about 1% of that stream) where appending reads had let it fill up. The bytes wait until
 * soreceive copies them out to the user -- or gives pages to the user (page transfer, `give`): then
 * the chunk takes a fresh run from the VM system (uvmPglistAlloc) before it gives anything, and moves
 * onto it once it is full and read.
 * Node asks for the *next* buffer right after each read (and once at the start), even when it is about
 * to pause, so one is always "armed" for it; reading pauses (TCP flow control does the rest) when no room would be left to
 * arm after the next read, and resumes when soreceive frees a chunk.
 */
import {
  checkKernel,
  type Kernel,
  KernelPanic,
  PAGE_SIZE,
  roundPage,
  type TransferRefusal,
  uvmKmAllocContig,
  uvmPglistAlloc,
  uvmPglistFree,
  uvmPglistSure,
  type VmPage,
} from '@loanout/core';
import { checkInteger, checkRecvArea } from './sockopt.js';

/**
 * SendBuffer: a socket's send buffer: the bytes handed to the host and not yet taken, and the sends waiting
 * for room (sbspace/sbwait).
 */
export class SendBuffer {
  /** the high-water mark, in bytes */
  readonly hiwat: number;
  /** bytes queued to the host and not yet written by it */
  cc = 0;
  private readonly waiters: { n: number; resolve: () => void; reject: (e: Error) => void }[] = [];

  /** => hiwat: a positive integer (EINVAL) */
  constructor(hiwat: number) {
    checkInteger('sbreserve', 'high-water mark', hiwat, 1);
    this.hiwat = hiwat;
  }

  /** fits: may n more bytes be queued now? (an empty buffer takes any chunk) */
  fits(n: number): boolean {
    return this.waiters.length === 0 && (this.cc === 0 || this.cc + n <= this.hiwat);
  }

  /** waitSpace: resolve once n bytes fit (sbwait); rejected by abort() */
  waitSpace(n: number): Promise<void> {
    return new Promise((resolve, reject) => this.waiters.push({ n, resolve, reject }));
  }

  /** add: n more bytes went to the host */
  add(n: number): void {
    this.cc += n;
  }

  /** drop: the host took n bytes; wake the sends that now fit */
  drop(n: number): void {
    this.cc -= n;
    while (this.waiters.length > 0 && (this.cc === 0 || this.cc + this.waiters[0].n <= this.hiwat)) {
      this.waiters.shift()!.resolve();
    }
  }

  /** abort: fail every waiting send with err */
  abort(err: Error): void {
    for (const w of this.waiters.splice(0)) w.reject(err);
  }
}

/*
 * A receive chunk: one physically contiguous run of wired kernel pages. Reads append to it until it is
 * full (`filled`: where the next read goes, always a page boundary); recv reads it from the front
 * (`read`). A read that ended mid-page left a hole to the end of that page: `ends` are those reads'
 * ends, oldest first (the bytes before each are data, those after it up to the page's end are not).
 * Pages given to a process (page transfer) leave nulls; a chunk that gave pages away takes a fresh run
 * first (`fresh`), and switches to it once it is full and all its bytes have been read.
 */
interface RecvChunk {
  pages: (VmPage | null)[];
  view: Buffer;
  fresh: VmPage[] | null;
  filled: number;
  read: number;
  ends: number[];
}

/** why received bytes that could have moved as whole pages were copied instead */
export type RecvFallback = TransferRefusal | 'no-run';

/**
 * RecvBuffer: a socket's receive area (see above): chunks of contiguous wired kernel pages that Node reads
 * into.
 */
export class RecvBuffer {
  /** bytes per chunk */
  readonly chunkBytes: number;
  private readonly kernel: Kernel;
  private readonly chunkPages: number;
  private readonly all: RecvChunk[];
  private readonly free: RecvChunk[] = [];
  /* chunks with bytes to read, or being filled (the last), in the order they were filled */
  private readonly queue: RecvChunk[] = [];
  /* the chunk Node will read into next, and where in it */
  private armed: RecvChunk | null = null;
  private armedAt = 0;
  /** bytes received and not yet read */
  cc = 0;
  /** the area has been given back */
  released = false;

  private constructor(kernel: Kernel, runs: VmPage[][], chunkBytes: number) {
    this.kernel = kernel;
    this.chunkBytes = chunkBytes;
    this.chunkPages = chunkBytes / PAGE_SIZE;
    this.all = runs.map((run) => ({
      pages: run,
      view: this.viewOf(run),
      fresh: null,
      filled: 0,
      read: 0,
      ends: [],
    }));
    this.free.push(...this.all);
  }

  private viewOf(run: VmPage[]): Buffer {
    return Buffer.from(this.kernel.uvm.ram.buffer, run[0].frame * PAGE_SIZE, this.chunkBytes);
  }

  /**
   * create: a receive area of `chunks` chunks of chunkBytes (a page multiple), each one run of
   * physically contiguous kernel memory
   * => throws EINVAL for bad sizes (fewer than 2 chunks, more than the kernel's RAM in all), ENOMEM
   *    when the runs can't be had (after the pagedaemon tried); then nothing is kept
   */
  static async create(kernel: Kernel, chunkBytes: number, chunks: number): Promise<RecvBuffer> {
    checkKernel('soreserve', kernel);
    checkRecvArea('soreserve', chunkBytes, chunks, kernel.uvm.pages.length);
    const runs: VmPage[][] = [];
    try {
      for (let i = 0; i < chunks; i++) {
        runs.push(await uvmKmAllocContig(kernel.uvm, chunkBytes / PAGE_SIZE, { zero: false }));
      }
    } catch (err) {
      for (const run of runs) uvmPglistFree(run);
      throw err;
    }
    return new RecvBuffer(kernel, runs, chunkBytes);
  }

  /* the chunk being filled, if it has room left */
  private get filling(): RecvChunk | null {
    const c = this.queue[this.queue.length - 1];
    return c !== undefined && c.filled < this.chunkBytes ? c : null;
  }

  /**
   * arm: where the host reads next (onread's buffer function): the rest of the chunk being filled,
   * from a page boundary, or a free chunk
   * => panics if no room is left: reading should have paused (see filled)
   */
  arm(): Buffer {
    let c = this.filling;
    if (c === null) {
      c = this.free.pop() ?? null;
      if (c === null) throw new KernelPanic('soreceive: no free receive chunk to arm');
      c.filled = 0;
      c.read = 0;
      c.ends.length = 0;
      this.queue.push(c);
    }
    this.armed = c;
    this.armedAt = c.filled;
    /* a whole chunk is the chunk's own view: no new Buffer for each read of a steady stream */
    return c.filled === 0 ? c.view : c.view.subarray(c.filled);
  }

  /**
   * filled: the host read n bytes into the armed buffer buf (onread's callback); a read that ends
   * mid-page closes that page: the next one starts the next page
   * => returns whether reading may go on: room must be left for the arm right after this read and
   *    for the one after the next read
   */
  filled(n: number, buf: Buffer): boolean {
    const c = this.armed;
    if (c === null || buf.byteOffset !== c.view.byteOffset + this.armedAt) {
      throw new KernelPanic('soreceive: a read landed outside the armed chunk');
    }
    this.armed = null;
    c.filled += n;
    this.cc += n;
    if (c.filled % PAGE_SIZE !== 0) {
      c.ends.push(c.filled);
      c.filled = roundPage(c.filled);
    }
    return this.roomToRead;
  }

  /*
   * roomToRead: is there room for the next arm and the one after? One test for both going on
   * reading (filled) and resuming it (canResume): a resume on a weaker test than the pause's would
   * let node:net read into the last free chunk and then arm with none left.
   */
  private get roomToRead(): boolean {
    return this.free.length >= (this.filling !== null ? 1 : 2);
  }

  /** canResume: is there room again (roomToRead), so that a paused reader may read on? */
  get canResume(): boolean {
    return this.roomToRead && !this.released;
  }

  /** empty: no byte waits to be read */
  get empty(): boolean {
    return this.cc === 0;
  }

  /** head: the oldest unread bytes of one read's run of them (a view), or null */
  head(max: number): Buffer | null {
    const n = this.headRun;
    if (n === 0) return null;
    const c = this.queue[0];
    return c.view.subarray(c.read, c.read + Math.min(max, n));
  }

  /**
   * headRun: how many unread bytes lie at the head without a hole: up to the end of the read that
   * ended mid-page (the page after it is then closed: nothing more will be read into it), or up to
   * where the next read goes (a page boundary)
   */
  get headRun(): number {
    const c = this.queue[0];
    if (c === undefined) return 0;
    return (c.ends.length > 0 ? c.ends[0] : c.filled) - c.read;
  }

  /** headOffset: where in its chunk the oldest unread byte is (its page offset decides a transfer) */
  get headOffset(): number {
    return this.queue[0]?.read ?? 0;
  }

  /** consume: n bytes of head() were read (a hole after them is skipped); returns true if a chunk became free */
  consume(n: number): boolean {
    const c = this.queue[0];
    c.read += n;
    this.cc -= n;
    if (c.ends.length > 0 && c.read === c.ends[0]) c.read = roundPage(c.ends.shift()!);
    if (c.read < this.chunkBytes) return false;
    this.queue.shift();
    this.recycle(c);
    return true;
  }

  /**
   * give: hand the next k pages of unread bytes to `take`, for a page transfer: k whole pages, or
   * k - 1 and a last one holding only `tail` bytes (the end of a read): the rest of it is zeroed first
   * (it may hold older bytes of another's), so that no byte moves but those received
   * => the oldest unread byte must start a page, and the bytes be there -- a tail ending a read (panic otherwise)
   * => `take` gets the pages and makes them another's (uvmPageTransfer): the area never touches them
   *    again; if it throws, nothing is taken (the zeroed tail was no byte's) and the error goes to the caller
   * => returns false, with nothing taken, when no fresh run can be had to replace them
   * => the chunk's fresh run is taken after `take` when it is sure to be had then (uvmPglistSure): the
   *    pages `take` freed -- the process's old pages, just read by the network and still warm in the
   *    CPU's caches -- are then the first the free lists hand out, so a receive loop into one buffer
   *    keeps reading into the same few frames, as a ring of user buffers would; else it is taken
   *    before any page goes
   */
  give(k: number, take: (pages: VmPage[]) => void, tail = 0): boolean {
    const c = this.queue[0];
    const bytes = tail === 0 ? k * PAGE_SIZE : (k - 1) * PAGE_SIZE + tail;
    const run = this.headRun;
    const whole = tail === 0 || (tail < PAGE_SIZE && run === bytes);
    if (k < 1 || run < bytes || c.read % PAGE_SIZE !== 0 || !whole) {
      throw new KernelPanic(
        `soreceive: no ${k} pages (${bytes} bytes) to give at the head of the receive area`,
      );
    }
    const uvm = this.kernel.uvm;
    const later = c.fresh === null && uvmPglistSure(uvm, this.chunkPages);
    if (c.fresh === null && !later) {
      c.fresh = uvmPglistAlloc(uvm, this.chunkPages, { zero: false });
      if (c.fresh === null) return false;
    }
    const first = c.read / PAGE_SIZE;
    if (tail !== 0) c.view.fill(0, c.read + bytes, c.read + k * PAGE_SIZE);
    take(c.pages.slice(first, first + k) as VmPage[]);
    c.pages.fill(null, first, first + k);
    if (later) {
      c.fresh = uvmPglistAlloc(uvm, this.chunkPages, { zero: false });
      if (c.fresh === null) throw new KernelPanic('soreceive: a sure run of pages could not be had');
    }
    this.consume(bytes);
    return true;
  }

  /* recycle: a chunk full and all read is free again -- on its fresh run if it gave pages away */
  private recycle(c: RecvChunk): void {
    if (c.fresh !== null) {
      uvmPglistFree(c.pages.filter((pg): pg is VmPage => pg !== null));
      c.pages = c.fresh;
      c.view = this.viewOf(c.fresh);
      c.fresh = null;
    }
    this.free.push(c);
  }

  /** discard: drop every byte received and not yet read (a closing socket); returns whether a chunk became free */
  discard(): boolean {
    let freed = false;
    while (this.cc > 0) freed = this.consume(this.headRun) || freed;
    return freed;
  }

  /** release: give the area back to the VM system (once) */
  release(): void {
    if (this.released) return;
    this.released = true;
    this.queue.length = 0;
    this.free.length = 0;
    this.cc = 0;
    for (const c of this.all) {
      uvmPglistFree(c.pages.filter((pg): pg is VmPage => pg !== null));
      if (c.fresh !== null) uvmPglistFree(c.fresh);
    }
  }
}
