/*
 * uvm_vnode.ts: vnode objects, memory objects backed by real files (NetBSD's uvn pager).
 *
 * A file mapped with Proc.mmapFile() becomes one VnodeObject per file, shared by every mapping of that
 * file in this kernel (the vnode cache). A file is known by its identity -- device and inode -- as a
 * NetBSD vnode is, never by its path: a file replaced under its path (rename) is another file, which
 * new mappings get, while old mappings keep the one they mapped (its FileHandle stays open).
 *
 * Pages are read from the file through node:fs/promises on the first fault (or loan) and written back
 * when dirty: by the pagedaemon, by flush(), and when the last mapping goes away. Only regular files
 * are mapped: the type is checked before the file is opened, and the open never blocks (O_NONBLOCK),
 * so a FIFO or a device cannot hold one of Node's file-I/O threads.
 *
 * Someone else may truncate or grow the file under its mappings. The object learns the file's new size
 * when it is attached again, when a page read comes up short or long, and before every write-back
 * (noticeSize). A page past the end of the file is then an error from the pager -- EFAULT, as NetBSD's
 * uvn_get fails and the fault is a SIGBUS -- never a page of zeros presented as data; pages the object
 * held past the new end leave it (loaned ones become orphans and keep their bytes); and a write-back
 * never writes past the file's current end, so it cannot grow a truncated file back. Bytes past the end
 * of the file within its last page read as zeros and are never written.
 */
import { type BigIntStats, constants } from 'node:fs';
import { type FileHandle, open, stat } from 'node:fs/promises';
import { KernelError } from './errors.js';
import { PAGE_SIZE } from './param.js';
import type { Uvm } from './uvm.js';
import { UvmObject } from './uvm_object.js';
import {
  PG_BUSY,
  PG_RELEASED,
  uvmPageFree,
  uvmPageUnbusy,
  uvmPageWaitBusy,
  type VmPage,
} from './uvm_page.js';

/**
 * VnodeObject: a real file as a memory object (NetBSD's vnode pager), one per file identity per kernel. Made
 * by proc.mmapFile; users may look at it (pg.uobject).
 */
export class VnodeObject extends UvmObject {
  /** always 'vnode' */
  readonly kind = 'vnode' as const;
  /** the path it was first mapped by (for messages: the file may have been renamed since) */
  readonly path: string;
  /** the file's identity, "device:inode": the vnode cache's key */
  readonly id: string;
  /** the file was opened read-write */
  readonly writable: boolean;
  /** @readonly the file's size in bytes, as last seen (noticeSize) */
  size: number;
  private readonly fh: FileHandle;

  private constructor(uvm: Uvm, path: string, id: string, fh: FileHandle, size: number, writable: boolean) {
    super(uvm, Math.ceil(size / PAGE_SIZE));
    this.path = path;
    this.id = id;
    this.fh = fh;
    this.size = size;
    this.writable = writable;
  }

  /**
   * @internal
   * uvnAttach: the vnode object of the file at `path`, from the cache or newly opened (uvn_attach).
   * => gains a reference for the caller; the file is found by its identity (device and inode), so a
   *    file replaced under the path is a new object, and the old one stays with its old mappings
   * => a cached object whose file changed size meanwhile takes the new size (noticeSize)
   * => waits for an old vnode of the file that is still writing back, so the new one reads its bytes
   * => throws ENOENT (no such file), EACCES, EINVAL (not a regular file: checked before any open,
   *    and the open never blocks), EIO
   */
  static async attach(uvm: Uvm, path: string): Promise<VnodeObject> {
    const dying = uvm.dyingVnodes;
    for (;;) {
      const st = await statRegular(path);
      const id = fileId(st);
      const gone = dying.get(id);
      if (gone !== undefined) {
        await gone;
        continue;
      }
      const cached = uvm.vnodes.get(id);
      if (cached !== undefined) {
        cached.reference();
        cached.noticeSize(Number(st.size));
        return cached;
      }
      const vn = await VnodeObject.openAs(uvm, path, id);
      if (vn !== null) return vn;
    }
  }

  /**
   * openAs: open the file at `path` as a new vnode object, if it is still the file `id` and nobody
   * attached it meanwhile.
   * => returns null (having closed what it opened) if the caller must look again
   */
  private static async openAs(uvm: Uvm, path: string, id: string): Promise<VnodeObject | null> {
    const { fh, writable } = await openBest(path);
    let st: BigIntStats;
    try {
      st = await fh.stat({ bigint: true });
    } catch (err) {
      await fh.close();
      throw fsError('uvn_attach', path, err as NodeJS.ErrnoException);
    }
    if (!st.isFile() || fileId(st) !== id || uvm.vnodes.has(id) || uvm.dyingVnodes.has(id)) {
      await fh.close();
      return null;
    }
    const vn = new VnodeObject(uvm, path, id, fh, Number(st.size), writable);
    uvm.vnodes.set(id, vn);
    return vn;
  }

  /**
   * @internal
   * noticeSize: the file is `size` bytes long now (someone else may have truncated or grown it).
   * => shrunk: every page wholly past the new end leaves the object (truncate: a BUSY one is
   *    RELEASED, a loaned one becomes an orphan and keeps its bytes); faults and loans there get EFAULT
   * => grown: the object grows; a clean, idle, unloaned last page read when the file was shorter is
   *    dropped, so that it is read again with the new bytes
   */
  noticeSize(size: number): void {
    if (size === this.size) return;
    const old = this.size;
    this.size = size;
    const npages = Math.ceil(size / PAGE_SIZE);
    if (size < old) {
      this.truncate(npages);
      return;
    }
    this.npages = npages;
    const tail = old % PAGE_SIZE !== 0 ? this.pages[Math.floor(old / PAGE_SIZE)] : undefined;
    if (tail !== undefined && !(tail.flags & PG_BUSY) && tail.loanCount === 0 && !this.isDirty(tail)) {
      this.freePage(tail);
    }
  }

  /** @internal */
  protected needsIo(): boolean {
    return true;
  }

  /**
   * @internal
   * pgoRead: read a page from the file (uvn_get).
   * => a read that comes up short or long of the size we knew makes us look at the file's size again
   * => throws EFAULT if the page is past the end of the file (it was cut while mapped)
   */
  protected async pgoRead(pg: VmPage): Promise<void> {
    const pos = pg.offset * PAGE_SIZE;
    const view = pg.bytes();
    await this.uvm.io({ kind: 'vnode-read', object: this, offset: pg.offset, frame: pg.frame });
    let got = 0;
    while (got < PAGE_SIZE) {
      const { bytesRead } = await this.fh.read(view, got, PAGE_SIZE - got, pos + got);
      if (bytesRead === 0) break;
      got += bytesRead;
    }
    if (got !== Math.max(0, Math.min(PAGE_SIZE, this.size - pos))) {
      this.noticeSize(Number((await this.fh.stat({ bigint: true })).size));
    }
    if (got === 0 || pos >= this.size || pg.flags & PG_RELEASED) {
      throw new KernelError(
        'EFAULT',
        `uvn_get: page ${pg.offset} of ${this.path} is past the end of the file (${this.size} bytes)`,
      );
    }
    view.fill(0, got);
  }

  /**
   * @internal
   * pgoWrite: write a page back to the file (uvn_put).
   * => writes only bytes inside both the size we knew and the file's current size, so a file someone
   *    else truncated is not grown back (the object notices the new size: see noticeSize)
   * => throws EIO for a file opened read-only
   */
  protected async pgoWrite(pg: VmPage): Promise<void> {
    if (!this.writable) throw new KernelError('EIO', `uvn_put: ${this.path} is read-only`);
    const pos = pg.offset * PAGE_SIZE;
    await this.uvm.io({ kind: 'vnode-write', object: this, offset: pg.offset, frame: pg.frame });
    const now = Number((await this.fh.stat({ bigint: true })).size);
    const len = Math.max(0, Math.min(PAGE_SIZE, this.size - pos, now - pos));
    this.noticeSize(now);
    if (len > 0) await this.fh.write(pg.bytes(), 0, len, pos);
  }

  /**
   * @internal
   * flush: write back every dirty page (and with `free`, drop the pages) (uvn_flush).
   * => pages BUSY with someone else's I/O are waited for
   */
  async flush(free = false): Promise<void> {
    for (let i = 0; i < this.pages.length; i++) {
      let pg = this.pages[i];
      while (pg !== undefined && pg.flags & PG_BUSY) {
        await uvmPageWaitBusy(pg);
        pg = this.pages[i];
      }
      if (pg === undefined) continue;
      pg.flags |= PG_BUSY;
      try {
        await this.put(pg);
      } finally {
        if (pg.flags & PG_RELEASED) this.releasePage(pg);
        else uvmPageUnbusy(pg);
      }
      if (free && pg.uobject === this && !(pg.flags & PG_BUSY)) this.freePage(pg);
    }
  }

  /** @internal last mapping gone: write back, free the pages, close the file (in the background). */
  protected onLastRef(): void {
    this.uvm.vnodes.delete(this.id);
    const done = this.teardown();
    this.uvm.background(done);
    const dying = this.uvm.dyingVnodes;
    const settled = done.then(
      () => undefined,
      () => undefined,
    );
    dying.set(this.id, settled);
    void settled.then(() => {
      if (dying.get(this.id) === settled) dying.delete(this.id);
    });
  }

  private async teardown(): Promise<void> {
    try {
      await this.flush(true);
    } finally {
      for (const pg of this.pages) if (pg !== undefined && !(pg.flags & PG_BUSY)) uvmPageFree(pg);
      if (this.resident === 0) this.uvm.objects.delete(this);
      await this.fh.close();
    }
  }
}

/*
 * openBest: open a file read-write if we may, else read-only; never blocking (O_NONBLOCK: an open of
 * a FIFO would otherwise wait for its other end in one of Node's file-I/O threads)
 */
async function openBest(path: string): Promise<{ fh: FileHandle; writable: boolean }> {
  const nonblock = constants.O_NONBLOCK ?? 0;
  try {
    return { fh: await open(path, constants.O_RDWR | nonblock), writable: true };
  } catch {
    try {
      return { fh: await open(path, constants.O_RDONLY | nonblock), writable: false };
    } catch (err) {
      throw fsError('uvn_attach', path, err as NodeJS.ErrnoException);
    }
  }
}

/* statRegular: the file at path, if it is a regular file (EINVAL otherwise), checked before any open */
async function statRegular(path: string): Promise<BigIntStats> {
  const st = await stat(path, { bigint: true }).catch((err: NodeJS.ErrnoException) => {
    throw fsError('uvn_attach', path, err);
  });
  if (!st.isFile()) throw new KernelError('EINVAL', `uvn_attach: ${path} is not a regular file`);
  return st;
}

/* fileId: a file's identity, device and inode */
function fileId(st: BigIntStats): string {
  return `${st.dev}:${st.ino}`;
}

function fsError(fn: string, path: string, err: NodeJS.ErrnoException): KernelError {
  const code =
    err.code === 'ENOENT' || err.code === 'EACCES'
      ? err.code
      : err.code === 'ERR_INVALID_ARG_VALUE' || err.code === 'ERR_INVALID_ARG_TYPE'
        ? 'EINVAL'
        : 'EIO';
  return new KernelError(code, `${fn}: ${path}: ${err.message}`, { cause: err });
}
