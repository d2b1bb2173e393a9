/*
 * uvmPglistFree takes any list of kernel pages; each page belongs to the kernel it was allocated
 * from, and freeing it must put it back on that kernel's free lists -- never on another kernel's
 * (a list mixing two kernels' pages is either refused before anything changes, or each page goes
 * home). Two kernels in one Node process is how the benches and the examples compare runs.
 */
import { expect, it } from 'vitest';
import { Kernel, KernelError, KernelPanic, uvmPglistAlloc, uvmPglistFree } from '../src/index.js';

it('freeing pages of two kernels in one call leaves both kernels’ books balanced', () => {
  const a = new Kernel({ physPages: 32, swapPages: 0 });
  const b = new Kernel({ physPages: 32, swapPages: 0 });
  const pa = uvmPglistAlloc(a.uvm, 1)!;
  const keep = uvmPglistAlloc(a.uvm, 1)!; /* a's next frame, still in use */
  const pb = uvmPglistAlloc(b.uvm, 2)!;
  expect(keep[0].frame).toBe(pa[0].frame + 1);
  expect(pb[1].frame).toBe(pa[0].frame + 1);
  try {
    uvmPglistFree([pa[0], pb[1]]);
  } catch (err) {
    /* refusing the mixed list is fine too, if nothing changed */
    expect(err instanceof KernelError || err instanceof KernelPanic).toBe(true);
  }
  /* a's page still in use is not on a's free lists */
  expect(a.uvm.free.blockOf(keep[0].frame)).toBeNull();
  a.checkInvariants();
  b.checkInvariants();
});
