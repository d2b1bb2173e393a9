/*
 * proc.ts: a process -- an address space and the system calls that work on it (mmap, munmap,
 * mprotect, fork, exit) plus copyin/copyout through the MMU (read, write).
 *
 * Every byte a process reads or writes goes through its pmap's translation; a missing or too weak
 * mapping is a fault, resolved by uvmFault (which may copy-on-write, break a loan, zero-fill, page in)
 * and then the access is retried. That is how a user write after a zero-copy send ends up in a copy,
 * not in the bytes the network is still reading.
 */
import { KernelError } from './errors.js';
import type { Kernel } from './kernel.js';
import {
  atop,
  checkAccess,
  checkAddress,
  checkLength,
  checkProt,
  hex,
  Inherit,
  type Inheritance,
  option,
  PAGE_SHIFT,
  PAGE_SIZE,
  Prot,
  roundPage,
  VM_MAX_ADDRESS,
} from './param.js';
import type { Uvm } from './uvm.js';
import { AObject } from './uvm_aobj.js';
import { memoryEvents, uvmFault, uvmFaultTry, uvmStarved } from './uvm_fault.js';
import {
  MapEntry,
  uvmMapFindSpace,
  uvmMapFork,
  uvmMapInsert,
  uvmMapProtect,
  uvmUnmap,
  VmMap,
} from './uvm_map.js';
import { VnodeObject } from './uvm_vnode.js';

/** Options of proc.mmap (anonymous memory). */
export interface MmapOptions {
  /** Prot bits; default READ | WRITE */
  prot?: number;
  /** share the memory with children after fork (an aobj) instead of copy-on-write */
  shared?: boolean;
  /** what fork does with it; default COPY (SHARE for shared mappings) */
  inherit?: Inheritance;
}

/** Options of proc.mmapFile (a real file). */
export interface MmapFileOptions {
  /** Prot bits; default READ */
  prot?: number;
  /** byte offset in the file, page-aligned; default 0 */
  offset?: number;
  /** bytes to map; default the rest of the file */
  length?: number;
  /** writes go to the file (MAP_SHARED) instead of to private copies */
  shared?: boolean;
}

/** What a process needs of its kernel (a Kernel is one); its members are the kernel's own. */
export interface ProcHost {
  /** @internal */
  readonly uvm: Uvm;
  /** @internal */
  procExited(p: Proc): void;
  /** @internal */
  createChild(parent: Proc): Proc;
}

/**
 * Proc: a process -- an address space (its map) and the system calls on it. Made by kernel.createProcess() or
 * proc.fork(), never by `new`.
 *
 * @hideconstructor
 */
export class Proc {
  /** the process id, unique in its kernel */
  readonly pid: number;
  /** its address space: pass it to uvmLoan and the other VM calls */
  readonly map: VmMap;
  private readonly host: ProcHost;
  /* watchers of the address space (watch) */
  private readonly watchers = new Set<{ fn: () => void }>();
  /** @readonly exit() has been called: the address space is gone */
  exited = false;

  /** the kernel this process runs on */
  get kernel(): Kernel {
    return this.host as Kernel;
  }

  /** @internal a kernel makes its processes (kernel.createProcess, proc.fork) */
  constructor(host: ProcHost, pid: number) {
    this.host = host;
    this.pid = pid;
    this.map = new VmMap(host.uvm, host.uvm.mmu.createPmap());
  }

  /**
   * mmap: map anonymous zero-filled memory (private copy-on-write, or shared).
   * => returns the page-aligned va; length is rounded up to pages
   * => throws EINVAL (bad length or options), ENOMEM (no address space), ESRCH (exited)
   */
  mmap(length: number, opts: MmapOptions = {}): number {
    this.alive('mmap');
    checkLength('mmap', length, 1, VM_MAX_ADDRESS);
    checkOptions('mmap', opts);
    const prot = option(opts.prot, Prot.READ | Prot.WRITE);
    checkProt('mmap', prot);
    const len = roundPage(length);
    const shared = opts.shared === true;
    const inherit = checkInherit(option(opts.inherit, shared ? Inherit.SHARE : Inherit.COPY));
    const start = uvmMapFindSpace(this.map, len);
    const object = shared ? new AObject(this.host.uvm, atop(len)) : null;
    uvmMapInsert(this.map, newEntry(start, len, prot, Prot.ALL, inherit, !shared, object, 0));
    return start;
  }

  /**
   * mmapFile: map a real file (through its vnode object).
   * => offset page-aligned (EINVAL); shared writable needs a writable file (EACCES)
   * => throws ENOENT (no such file), EINVAL (empty range, beyond the end), ESRCH
   */
  async mmapFile(path: string, opts: MmapFileOptions = {}): Promise<number> {
    this.alive('mmapFile');
    if (typeof path !== 'string' || path === '') throw new KernelError('EINVAL', 'mmapFile: bad path');
    checkOptions('mmapFile', opts);
    /* each option read once: what is checked is what is used, whatever a getter answers later */
    const prot = option(opts.prot, Prot.READ);
    checkProt('mmapFile', prot);
    const offset = option(opts.offset, 0);
    checkAddress('mmapFile', offset, true);
    const length = opts.length;
    if (length !== undefined) checkLength('mmapFile', length, 1, VM_MAX_ADDRESS);
    const shared = opts.shared === true;
    const vn = await VnodeObject.attach(this.host.uvm, path);
    try {
      return this.mapVnode(vn, prot, offset, length, shared);
    } catch (err) {
      vn.detach();
      throw err;
    }
  }

  private mapVnode(
    vn: VnodeObject,
    prot: number,
    offset: number,
    lengthOpt: number | undefined,
    shared: boolean,
  ): number {
    this.alive('mmapFile');
    const length = option(lengthOpt, vn.size - offset);
    if (length <= 0 || offset >= vn.size) {
      throw new KernelError(
        'EINVAL',
        `mmapFile: nothing to map at offset ${offset} of a ${vn.size}-byte file`,
      );
    }
    const maxProt = shared && !vn.writable ? Prot.READ | Prot.EXEC : Prot.ALL;
    if ((prot & ~maxProt) !== 0) throw new KernelError('EACCES', `mmapFile: ${vn.path} is not writable`);
    const len = roundPage(length);
    const start = uvmMapFindSpace(this.map, len);
    const inherit = shared ? Inherit.SHARE : Inherit.COPY;
    uvmMapInsert(this.map, newEntry(start, len, prot, maxProt, inherit, !shared, vn, atop(offset)));
    return start;
  }

  /**
   * munmap: remove mappings of [va, va + length) (unmapped parts are fine).
   * => va page-aligned, length > 0 (EINVAL)
   */
  munmap(va: number, length: number): void {
    this.alive('munmap');
    checkAddress('munmap', va, true);
    checkLength('munmap', length, 1, VM_MAX_ADDRESS);
    uvmUnmap(this.map, va, va + roundPage(length));
    this.changed();
  }

  /**
   * mprotect: change the protection of [va, va + length).
   * => EINVAL (bad arguments), ENOMEM (part of the range unmapped), EACCES (beyond maxProt)
   */
  mprotect(va: number, length: number, prot: number): void {
    this.alive('mprotect');
    checkAddress('mprotect', va, true);
    checkLength('mprotect', length, 1, VM_MAX_ADDRESS);
    checkProt('mprotect', prot);
    uvmMapProtect(this.map, va, va + roundPage(length), prot);
    this.changed();
  }

  /**
   * read: copy n bytes out of the process's memory (copyin), through the MMU.
   * => throws EFAULT if any byte is unmapped or unreadable (nothing is read), EINVAL for bad arguments,
   *    ESRCH if the process has exited (or exits while the read sleeps on a fault)
   */
  async read(va: number, n: number): Promise<Buffer> {
    this.alive('read');
    this.checkRange('read', va, n, Prot.READ);
    const out = Buffer.allocUnsafe(n);
    await this.copyinChecked(va, out, 0, n);
    return out;
  }

  /**
   * copyin: copy n bytes of the process's memory into a kernel buffer at dst[offset] (uiomove's
   * user-to-kernel half), through the MMU, with no intermediate copy.
   * => throws EFAULT if any byte is unmapped or unreadable (nothing is copied), EINVAL (bad arguments,
   *    or dst too small)
   */
  async copyin(va: number, dst: Uint8Array, offset: number, n: number): Promise<void> {
    this.alive('copyin');
    checkAddress('copyin', va, false);
    checkLength('copyin', n, 0, VM_MAX_ADDRESS);
    if (
      !(dst instanceof Uint8Array) ||
      !Number.isSafeInteger(offset) ||
      offset < 0 ||
      offset + n > dst.length
    ) {
      throw new KernelError('EINVAL', 'copyin: destination too small');
    }
    this.checkRange('copyin', va, n, Prot.READ);
    await this.copyinChecked(va, dst, offset, n);
  }

  /**
   * copyinPhys: walk n bytes of the process's memory through the MMU and hand each physically
   * contiguous piece to `sink(ramOffset, done, len)` -- the bytes are at RAM offset ramOffset and are
   * the done'th.. of the range. The sink moves them where it wants (uiomove for kernel memory).
   * => returns undefined when it is done already (every page was mapped: nothing slept), else a Promise
   *    that settles when the faults it took are resolved and every byte has gone to the sink
   * => throws EFAULT if any byte is unmapped or unreadable (before sink sees anything), EINVAL
   */
  copyinPhys(
    va: number,
    n: number,
    sink: (ramOffset: number, done: number, len: number) => void,
  ): Promise<void> | undefined {
    this.checkPhysArgs('copyin', 'sink', va, n, Prot.READ, sink);
    return this.transfer(va, n, Prot.READ, sink);
  }

  /**
   * copyinPhysNow: copyinPhys for a caller that must not sleep: walks the range as copyinPhys does,
   * resolving only faults that need no sleep
   * => returns true when every byte has gone to the sink; false when some page would have to be
   *    brought in (the sink has then seen only the bytes before it, and nothing more will come)
   * => throws EFAULT if any byte is unmapped or unreadable (before sink sees anything), EINVAL, ESRCH
   */
  copyinPhysNow(
    va: number,
    n: number,
    sink: (ramOffset: number, done: number, len: number) => void,
  ): boolean {
    this.checkPhysArgs('copyin', 'sink', va, n, Prot.READ, sink);
    return this.transferMapped(va, n, Prot.READ, sink, 0) === n;
  }

  /**
   * copyoutPhys: walk n bytes of the process's memory for writing, through the MMU (write faults:
   * copy-on-write, zero-fill, loan breaks), and hand each physically contiguous piece to
   * `source(ramOffset, done, len)`, which puts the done'th.. bytes being copied out at RAM offset
   * ramOffset (uiomove's kernel-to-user half, for bytes in kernel memory: one move within RAM each).
   * => returns undefined when it is done already (every page was mapped writable: nothing slept), else
   *    a Promise that settles when the faults it took are resolved and every piece has gone to source
   * => throws EFAULT if any byte is unmapped or not writable (before source sees anything), EINVAL,
   *    ESRCH (the process has exited; the Promise rejects with it if it exits while a fault sleeps)
   */
  copyoutPhys(
    va: number,
    n: number,
    source: (ramOffset: number, done: number, len: number) => void,
  ): Promise<void> | undefined {
    this.checkPhysArgs('copyout', 'source', va, n, Prot.WRITE, source);
    return this.transfer(va, n, Prot.WRITE, source);
  }

  /* checkPhysArgs: the *Phys calls' checks -- the process alive, the callback a function, the range mapped with prot */
  private checkPhysArgs(fn: string, what: string, va: number, n: number, prot: number, cb: unknown): void {
    this.alive(fn);
    if (typeof cb !== 'function') throw new KernelError('EINVAL', `${fn}: ${what} must be a function`);
    this.checkRange(fn, va, n, prot);
  }

  private copyinChecked(va: number, dst: Uint8Array, offset: number, n: number): Promise<void> | undefined {
    const ram = this.map.uvm.ram.bytes;
    if (dst.buffer === ram.buffer) {
      /* kernel memory (an mbuf cluster): one move within RAM, no temporary view */
      const base = dst.byteOffset + offset;
      return this.transfer(va, n, Prot.READ, (frameOff, done, len) => {
        ram.copyWithin(base + done, frameOff, frameOff + len);
      });
    }
    return this.transfer(va, n, Prot.READ, (frameOff, done, len) => {
      dst.set(ram.subarray(frameOff, frameOff + len), offset + done);
    });
  }

  /**
   * write: copy bytes into the process's memory (copyout), through the MMU.
   * => write faults copy-on-write, zero-fill, or break loans as needed
   * => throws EFAULT if any byte is unmapped or not writable (nothing is written), EINVAL, ESRCH (the
   *    process has exited, or exits while the write sleeps on a fault)
   */
  async write(va: number, bytes: Uint8Array): Promise<void> {
    this.alive('write');
    checkAddress('write', va, false);
    if (!(bytes instanceof Uint8Array)) throw new KernelError('EINVAL', 'write: bytes must be a Uint8Array');
    this.checkRange('write', va, bytes.length, Prot.WRITE);
    await this.transfer(va, bytes.length, Prot.WRITE, (frameOff, done, len) => {
      this.map.uvm.ram.bytes.set(bytes.subarray(done, done + len), frameOff);
    });
  }

  /*
   * transfer: walk [va, va + n) page by page through the MMU, handing each piece to `move`
   * => returns undefined when every page was mapped for the access (nothing slept); else a Promise
   *    that faults the missing pages in as it goes
   */
  private transfer(
    va: number,
    n: number,
    access: number,
    move: (at: number, done: number, len: number) => void,
  ): Promise<void> | undefined {
    const done = this.transferMapped(va, n, access, move, 0);
    return done < n ? this.transferFaulting(va, n, access, move, done) : undefined;
  }

  /* transferMapped: move pieces from `done` on while pages are mapped; returns where it stopped */
  private transferMapped(
    va: number,
    n: number,
    access: number,
    move: (at: number, done: number, len: number) => void,
    done: number,
  ): number {
    const pmap = this.map.pmap;
    while (done < n) {
      const a = va + done;
      let frame = pmap.translate(Math.floor(a / PAGE_SIZE), access);
      if (frame < 0) {
        /* a fault that needs no sleep is resolved here and now (uvmFaultTry); others wait for uvmFault */
        if (!uvmFaultTry(this.map, a - (a % PAGE_SIZE), access)) return done;
        frame = pmap.translate(Math.floor(a / PAGE_SIZE), access);
      }
      const off = a % PAGE_SIZE;
      const len = Math.min(n - done, PAGE_SIZE - off);
      move((frame << PAGE_SHIFT) + off, done, len);
      done += len;
    }
    return done;
  }

  private async transferFaulting(
    va: number,
    n: number,
    access: number,
    move: (at: number, done: number, len: number) => void,
    done: number,
  ): Promise<void> {
    for (let starved = 0; done < n; ) {
      const a = va + done;
      const memory = memoryEvents(this.map.uvm);
      try {
        await uvmFault(this.map, a - (a % PAGE_SIZE), access);
      } catch (err) {
        throw this.exitedMeanwhile(err);
      }
      if (this.exited) throw this.exitedMeanwhile(null);
      const before = done;
      done = this.transferMapped(va, n, access, move, done);
      /* the page came in, and was taken again before we could use it: starved, unless we moved on */
      starved = done > before ? 0 : uvmStarved(this.map.uvm, memory, starved, 'copyin/copyout', a);
    }
  }

  /**
   * exitedMeanwhile: the error for a call that slept (a fault, a page-in) while the process exited:
   * ESRCH, as for a call made after exit -- not the EFAULT the torn-down map would give
   * => returns err itself if the process is alive
   */
  exitedMeanwhile(err: unknown): unknown {
    if (!this.exited) return err;
    return new KernelError('ESRCH', `process ${this.pid} exited while the call slept`, {
      cause: err ?? undefined,
    });
  }

  /**
   * checkRange: may this process make `access` (Prot bits) to every byte of [va, va + n)?
   * => throws EINVAL (naming `fn`) for a bad address, length or access, EFAULT at the first byte unmapped or
   *    forbidden; touches no page
   */
  checkRange(fn: string, va: number, n: number, access: number): void {
    checkAddress(fn, va, false);
    checkAccess(fn, access);
    checkLength(fn, n, 0, VM_MAX_ADDRESS);
    let a = va;
    while (a < va + n) {
      const e = this.map.lookup(a);
      if (e === null) throw new KernelError('EFAULT', `${fn}: ${hex(a)} is not mapped`);
      if ((e.prot & access) !== access)
        throw new KernelError('EFAULT', `${fn}: ${hex(a)} forbids this access`);
      a = e.end;
    }
  }

  /** fork: a child whose address space is a copy-on-write copy of ours (by inheritance). */
  fork(): Proc {
    this.alive('fork');
    const child = this.host.createChild(this);
    uvmMapFork(this.map, child.map);
    return child;
  }

  /** exit: tear down the address space; every page only we held is freed (loaned ones orphaned). */
  exit(): void {
    this.alive('exit');
    uvmUnmap(this.map, 0, VM_MAX_ADDRESS);
    this.map.dead = true;
    this.exited = true;
    this.host.procExited(this);
    this.changed();
    this.watchers.clear();
  }

  /**
   * watch: call `fn` after every change to this process's address space that can take memory away
   * from a call in progress -- munmap, mprotect, exit (a knote on the process, EVFILT_PROC-style)
   * => fn a function (EINVAL); returns the function that stops watching (idempotent)
   * => fn runs synchronously inside munmap / mprotect / exit, after the change; it must not throw
   *    (one that does is dropped, with a process warning) and should only wake whoever sleeps
   * => for kernel services that sleep on behalf of a process (a socket send waiting for room, a
   *    receive waiting for data): they wake, look again, and fail with ESRCH or EFAULT
   */
  watch(fn: () => void): () => void {
    if (typeof fn !== 'function') throw new KernelError('EINVAL', 'watch: fn must be a function');
    /* an entry of its own, so that one function watched twice is two watches */
    const entry = { fn };
    this.watchers.add(entry);
    return () => {
      this.watchers.delete(entry);
    };
  }

  private changed(): void {
    for (const w of [...this.watchers]) {
      try {
        w.fn();
      } catch (err) {
        this.watchers.delete(w);
        const why = err instanceof Error ? err.message : String(err);
        process.emitWarning(`a process watcher threw (${why}) and was removed`, 'LoanoutHookWarning');
      }
    }
  }

  private alive(fn: string): void {
    if (this.exited) throw new KernelError('ESRCH', `${fn}: process ${this.pid} has exited`);
  }
}

/* checkOptions: EINVAL unless the options argument is an object */
function checkOptions(fn: string, opts: unknown): void {
  if (opts === null || typeof opts !== 'object') {
    throw new KernelError('EINVAL', `${fn}: options must be an object`);
  }
}

function checkInherit(inherit: Inheritance): Inheritance {
  if (inherit !== Inherit.NONE && inherit !== Inherit.COPY && inherit !== Inherit.SHARE) {
    throw new KernelError('EINVAL', `mmap: bad inheritance ${String(inherit)}`);
  }
  return inherit;
}

function newEntry(
  start: number,
  len: number,
  prot: number,
  maxProt: number,
  inheritance: Inheritance,
  copyOnWrite: boolean,
  object: MapEntry['object'],
  objOffset: number,
): MapEntry {
  return new MapEntry({
    start,
    end: start + len,
    prot,
    maxProt,
    inheritance,
    copyOnWrite,
    needsCopy: copyOnWrite,
    object,
    objOffset,
  });
}

/**
 * checkUserBuffer: validate the (process, address, length) a caller hands a kernel service (an mbuf
 * built from user memory, a socket send or receive).
 * => throws EINVAL (not a process; bad address; length < 1 or past the user address space), ESRCH
 *    (the process has exited); says nothing of whether the range is mapped (see Proc.checkRange)
 */
export function checkUserBuffer(fn: string, proc: Proc, va: number, len: number): void {
  if (!(proc instanceof Proc)) throw new KernelError('EINVAL', `${fn}: not a process`);
  checkAddress(fn, va, false);
  checkLength(fn, len, 1, VM_MAX_ADDRESS - va);
  if (proc.exited) throw new KernelError('ESRCH', `${fn}: process ${proc.pid} has exited`);
}
