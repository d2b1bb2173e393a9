/*
 * @loanout/core: the toy kernel. See README.md for the tour and the "Maps to NetBSD" table.
 *
 * The public surface, deliberately: what a user calls is exported as a value; the kernel's objects a
 * user receives and looks at but never makes (VmPage, VmMap, Anon, Uvm, ...) are exported as types
 * only, so `new VmPage(...)` does not compile; fields only the kernel may write are `@readonly` (the
 * published declarations make them readonly: scripts/dts-finish.mjs) or `@internal` (left out of
 * them); the page flags (PG_*), queues and pager codes are not exported.
 */

export type { KernelErrorCode } from './errors.js';
export { KernelError, KernelPanic } from './errors.js';
export type { KernelOptions, KernelStats } from './kernel.js';
export { checkKernel, Kernel } from './kernel.js';
export type { Inheritance } from './param.js';
export {
  Inherit,
  option,
  PAGE_MASK,
  PAGE_SHIFT,
  PAGE_SIZE,
  Prot,
  roundPage,
  VM_MAX_ADDRESS,
  VM_MIN_ADDRESS,
} from './param.js';
export type { PhysMem } from './physmem.js';
export { MAX_PHYS_PAGES } from './physmem.js';
export type { MmapFileOptions, MmapOptions } from './proc.js';
export { checkUserBuffer, Proc } from './proc.js';
export type { IoEvent, TraceEvent, TraceKind, Uvm } from './uvm.js';
export type { Anon } from './uvm_anon.js';
export { uvmFault, uvmFaultTry } from './uvm_fault.js';
export type { KernelVa } from './uvm_km.js';
export {
  uvmKmAllocContig,
  uvmKmAllocPage,
  uvmKmFreePage,
  VM_MIN_KERNEL_ADDRESS,
} from './uvm_km.js';
export type { LoanTarget } from './uvm_loan.js';
export {
  uvmLoan,
  uvmLoanAnonPages,
  uvmLoanNow,
  uvmLoanTry,
  uvmUnloanAnons,
  uvmUnloanPages,
} from './uvm_loan.js';
export type { VmMap } from './uvm_map.js';
export type { UvmObject } from './uvm_object.js';
export type { VmPage } from './uvm_page.js';
export type { FrameInfo, FrameMapping, FrameStateCode } from './uvm_pageinfo.js';
export { FRAME_STATE_NAMES, FrameState, frameState } from './uvm_pageinfo.js';
export type { PglistOptions } from './uvm_pglist.js';
export { uvmPglistAlloc, uvmPglistFree, uvmPglistSure } from './uvm_pglist.js';
export type { TransferRefusal } from './uvm_transfer.js';
export { TRANSFER_REFUSALS, uvmPageTransfer, uvmTransferCheck } from './uvm_transfer.js';
export { VnodeObject } from './uvm_vnode.js';
