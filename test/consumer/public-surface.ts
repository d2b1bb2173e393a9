// public-surface.ts: what the packages' declarations let your code do with the kernel's objects, and
// what they refuse: the kernel's own fields are readonly, its internals are not there, and its objects
// are made by the kernel, never by `new`. Each line after a `@ts-expect-error TSnnnn` comment must be
// refused with that error: the consumer test compiles this file as it is (strict), and again without
// those comments to check that every one is refused, and why.

import * as core from '@loanout/core';
import { type Kernel, PAGE_SIZE, uvmLoan, uvmUnloanPages } from '@loanout/core';
import * as mbuf from '@loanout/mbuf';
import { mbufCopyin, mbufSystem, mFreem } from '@loanout/mbuf';
import * as sockets from '@loanout/sockets';
import { type Socket, sockConnect } from '@loanout/sockets';

export async function lookButDoNotTouch(kernel: Kernel, so: Socket): Promise<number> {
  const proc = kernel.createProcess();
  const va = proc.mmap(PAGE_SIZE);
  const [page] = await uvmLoan(proc.map, va, PAGE_SIZE, 'kernel');
  // a user may look: the loan and wire counts, the owner, the bytes
  let seen = page.loanCount + page.wireCount + page.frame + page.offset + page.bytes().length;
  seen += page.uanon?.ref ?? 0;
  // @ts-expect-error TS2540 -- a page's loan count is the kernel's to change
  page.loanCount = 0;
  // @ts-expect-error TS2540
  page.wireCount = 0;
  // @ts-expect-error TS2540
  page.uobject = null;
  // @ts-expect-error TS2339 -- a page's flags and queue links are internal
  seen += page.flags;
  // @ts-expect-error TS2339
  page.next = null;
  // @ts-expect-error TS2339 -- the page flags are not exported
  seen += core.PG_BUSY;
  // @ts-expect-error TS2540
  proc.exited = true;
  uvmUnloanPages([page]);

  const m = await mbufCopyin(proc, va, 16);
  seen += m.len;
  // @ts-expect-error TS2540 -- an mbuf's length is the network's to change
  m.len = 0;
  // @ts-expect-error TS2339 -- the cluster pool is internal
  seen += mbufSystem(kernel).clusters.inUse;
  mFreem(m);

  seen += so.sendQueued + so.stats().bytesSent;
  // @ts-expect-error TS2341 -- a socket's send buffer is private, and its class not exported
  seen += so.snd.cc;
  // @ts-expect-error TS2339
  seen += new sockets.SendBuffer(1).cc;
  // @ts-expect-error TS2339 -- kernel objects are made by the kernel, never by `new`
  seen += new core.VmPage().frame;
  // @ts-expect-error TS2339
  seen += new mbuf.Mbuf().len;
  // @ts-expect-error TS2339
  seen += new sockets.Socket().localPort;
  // @ts-expect-error TS2673 -- a process is made by kernel.createProcess() or fork()
  seen += new core.Proc().pid;
  // @ts-expect-error TS2339 -- the VM system's queues and counters are internal: see kernel.stats()
  seen += kernel.uvm.exp.loansObj;
  seen += kernel.stats().loans + kernel.uvm.pages.length;
  // @ts-expect-error TS2542 -- the VM system's pages are the kernel's
  kernel.uvm.pages[0] = page;
  proc.exit();
  return seen;
}

export const connect = sockConnect;
