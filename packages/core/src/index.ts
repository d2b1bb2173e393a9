/*
 * @loanout/core: the toy kernel. See README.md for the tour and the "Maps to NetBSD" table.
 */

export type { KernelErrorCode } from './errors.js';
export { KernelError, KernelPanic } from './errors.js';
export type { KernelOptions, KernelStats } from './kernel.js';
export { checkKernel, Kernel } from './kernel.js';
export type { Inheritance } from './param.js';
export { Inherit, PAGE_MASK, PAGE_SHIFT, PAGE_SIZE, Prot, VM_MAX_ADDRESS, VM_MIN_ADDRESS } from './param.js';
export { MAX_PHYS_PAGES, PhysMem } from './physmem.js';
export { Mmu, Pmap } from './pmap.js';
export type { MmapFileOptions, MmapOptions } from './proc.js';
export { checkUserBuffer, Proc } from './proc.js';
export type { IoEvent, TraceEvent, TraceKind, UvmExp } from './uvm.js';
export { Uvm } from './uvm.js';
export { Amap } from './uvm_amap.js';
export { Anon } from './uvm_anon.js';
export { AObject, ZeroObject } from './uvm_aobj.js';
export { uvmFault, uvmFaultTry } from './uvm_fault.js';
export {
  KernelVa,
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
export { MapEntry, VmMap } from './uvm_map.js';
export { UNLOCK, UvmObject } from './uvm_object.js';
export { PG_BUSY, PG_CLEAN, PG_FAKE, PG_RELEASED, PG_WANTED, VmPage } from './uvm_page.js';
export type { FrameInfo, FrameMapping, FrameStateCode } from './uvm_pageinfo.js';
export { FRAME_STATE_NAMES, FrameState, frameState } from './uvm_pageinfo.js';
export { PageDaemon } from './uvm_pdaemon.js';
export type { PglistOptions } from './uvm_pglist.js';
export { uvmPglistAlloc, uvmPglistFree, uvmPglistSure } from './uvm_pglist.js';
export type { TransferRefusal } from './uvm_transfer.js';
export { TRANSFER_REFUSALS, uvmPageTransfer, uvmTransferCheck } from './uvm_transfer.js';
export { VnodeObject } from './uvm_vnode.js';
