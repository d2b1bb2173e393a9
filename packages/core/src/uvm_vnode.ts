/*
 * uvm_vnode.ts: vnode objects, memory objects backed by real files (NetBSD's uvn pager).
 *
 * A file mapped with Proc.mmapFile() becomes one VnodeObject per real path, shared by every mapping
 * of that file in this kernel (the vnode cache). Pages are read from the file through node:fs/promises
 * on the first fault (or loan) and written back when dirty: by the pagedaemon, by flush(), and when
 * the last mapping goes away. Bytes past the end of the file read as zeros and are never written.
 */
import { type FileHandle, open, realpath } from 'node:fs/promises';
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

export class VnodeObject extends UvmObject {
  readonly kind = 'vnode' as const;
  readonly path: string;
  readonly writable: boolean;
  /* file size in bytes when opened */
  size: number;
  private readonly fh: FileHandle;

  private constructor(uvm: Uvm, path: string, fh: FileHandle, size: number, writable: boolean) {
    super(uvm, Math.ceil(size / PAGE_SIZE));
    this.path = path;
    this.fh = fh;
    this.size = size;
    this.writable = writable;
  }

  /*
   * uvnAttach: the vnode object of a file, from the cache or newly opened (uvn_attach).
   * => gains a reference for the caller
   * => waits for an old vnode of the file that is still writing back, so the new one reads its bytes
   * => throws ENOENT (no such file), EACCES, EINVAL (not a regular file), EIO
   */
  static async attach(uvm: Uvm, path: string): Promise<VnodeObject> {
    const real = await realpath(path).catch((err: NodeJS.ErrnoException) => {
      throw fsError('uvn_attach', path, err);
    });
    const dying = uvm.dyingVnodes;
    for (;;) {
      const gone = dying.get(real);
      if (gone !== undefined) {
        await gone;
        continue;
      }
      const cached = uvm.vnodes.get(real);
      if (cached !== undefined) {
        cached.reference();
        return cached;
      }
      const { fh, writable } = await openBest(real);
      const st = await fh.stat();
      if (!st.isFile()) {
        await fh.close();
        throw new KernelError('EINVAL', `uvn_attach: ${path} is not a regular file`);
      }
      if (uvm.vnodes.has(real) || dying.has(real)) {
        await fh.close();
        continue;
      }
      const vn = new VnodeObject(uvm, real, fh, st.size, writable);
      uvm.vnodes.set(real, vn);
      return vn;
    }
  }

  protected needsIo(): boolean {
    return true;
  }

  protected async pgoRead(pg: VmPage): Promise<void> {
    const pos = pg.offset * PAGE_SIZE;
    const want = Math.max(0, Math.min(PAGE_SIZE, this.size - pos));
    const view = pg.bytes();
    await this.uvm.io({ kind: 'vnode-read', object: this, offset: pg.offset, frame: pg.frame });
    let got = 0;
    while (got < want) {
      const { bytesRead } = await this.fh.read(view, got, want - got, pos + got);
      if (bytesRead === 0) break;
      got += bytesRead;
    }
    view.fill(0, got);
  }

  protected async pgoWrite(pg: VmPage): Promise<void> {
    if (!this.writable) throw new KernelError('EIO', `uvn_put: ${this.path} is read-only`);
    const pos = pg.offset * PAGE_SIZE;
    const len = Math.max(0, Math.min(PAGE_SIZE, this.size - pos));
    await this.uvm.io({ kind: 'vnode-write', object: this, offset: pg.offset, frame: pg.frame });
    if (len > 0) await this.fh.write(pg.bytes(), 0, len, pos);
  }

  /*
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

  /* last mapping gone: write back, free the pages, close the file (in the background). */
  protected onLastRef(): void {
    this.uvm.vnodes.delete(this.path);
    const done = this.teardown();
    this.uvm.background(done);
    const dying = this.uvm.dyingVnodes;
    const settled = done.then(
      () => undefined,
      () => undefined,
    );
    dying.set(this.path, settled);
    void settled.then(() => {
      if (dying.get(this.path) === settled) dying.delete(this.path);
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

async function openBest(path: string): Promise<{ fh: FileHandle; writable: boolean }> {
  try {
    return { fh: await open(path, 'r+'), writable: true };
  } catch {
    try {
      return { fh: await open(path, 'r'), writable: false };
    } catch (err) {
      throw fsError('uvn_attach', path, err as NodeJS.ErrnoException);
    }
  }
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
