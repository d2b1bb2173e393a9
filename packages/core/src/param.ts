/*
 * param.ts: machine-independent constants of the toy machine (NetBSD's <sys/param.h> and
 * <uvm/uvm_extern.h> vocabulary): page size, protections, inheritance, and the address checks every
 * public entry point shares.
 */
import { KernelError } from './errors.js';

/** log2 of PAGE_SIZE */
export const PAGE_SHIFT = 12;
/** bytes per page: 4096 */
export const PAGE_SIZE = 1 << PAGE_SHIFT;
/** PAGE_SIZE - 1: the offset bits of an address */
export const PAGE_MASK = PAGE_SIZE - 1;

/** VM_PROT_*: protection bits of a mapping (and of an access). */
export const Prot = {
  NONE: 0,
  READ: 1,
  WRITE: 2,
  EXEC: 4,
  ALL: 7,
} as const;
/** Protection bits: an OR of Prot values. */
export type ProtBits = number;

/** VM_INHERIT_*: what fork does with a map entry. */
export const Inherit = {
  NONE: 'none',
  COPY: 'copy',
  SHARE: 'share',
} as const;
/** What fork does with a mapping: one of Inherit's values. */
export type Inheritance = (typeof Inherit)[keyof typeof Inherit];

/** The user part of every address space: [VM_MIN_ADDRESS, VM_MAX_ADDRESS). */
export const VM_MIN_ADDRESS = 0x10000;
/** The end of every user address space (exclusive): 1 GiB. */
export const VM_MAX_ADDRESS = 0x4000_0000;

/**
 * atop: the page number of an address (NetBSD's atop).
 * => returns floor(addr / PAGE_SIZE)
 */
export function atop(addr: number): number {
  return Math.floor(addr / PAGE_SIZE);
}

/**
 * ptoa: the address of a page number (NetBSD's ptoa).
 * => returns pages * PAGE_SIZE
 */
export function ptoa(pages: number): number {
  return pages * PAGE_SIZE;
}

/** isPageAligned: is n a multiple of PAGE_SIZE? */
export function isPageAligned(n: number): boolean {
  return n % PAGE_SIZE === 0;
}

/** roundPage: n rounded up to a page boundary (NetBSD's round_page) */
export function roundPage(n: number): number {
  return Math.ceil(n / PAGE_SIZE) * PAGE_SIZE;
}

/** truncPage: n rounded down to a page boundary (NetBSD's trunc_page) */
export function truncPage(n: number): number {
  return Math.floor(n / PAGE_SIZE) * PAGE_SIZE;
}

/**
 * hex: an address as NetBSD prints one, 0x and lower-case hex digits
 * => exact for any non-negative safe integer (kernel addresses are above 2^31: never use `&` or `|`,
 *    which work on 32-bit signed integers and would print 0x-80000000)
 */
export function hex(n: number): string {
  return `0x${n.toString(16)}`;
}

/**
 * checkLength: validate a byte count given by a user.
 * => `fn` names the caller in the error message
 * => throws EINVAL unless len is a safe integer, >= min and <= max
 */
export function checkLength(fn: string, len: number, min = 1, max = VM_MAX_ADDRESS): void {
  if (!Number.isSafeInteger(len) || len < min || len > max) {
    throw new KernelError('EINVAL', `${fn}: bad length ${String(len)}`);
  }
}

/**
 * checkAddress: validate a user virtual address (not whether it is mapped).
 * => throws EINVAL unless va is a non-negative safe integer (page-aligned when `aligned`)
 */
export function checkAddress(fn: string, va: number, aligned: boolean): void {
  if (!Number.isSafeInteger(va) || va < 0) {
    throw new KernelError('EINVAL', `${fn}: bad address ${String(va)}`);
  }
  if (aligned && !isPageAligned(va)) {
    throw new KernelError('EINVAL', `${fn}: address ${hex(va)} is not page-aligned`);
  }
}

/**
 * checkProt: validate protection bits.
 * => throws EINVAL unless prot is an integer made of READ|WRITE|EXEC: 0..7, compared as a number
 *    (never through `&`, which would take 2^32 + 1 for 1)
 */
export function checkProt(fn: string, prot: number): void {
  if (!Number.isInteger(prot) || prot < 0 || prot > Prot.ALL) {
    throw new KernelError('EINVAL', `${fn}: bad protection ${String(prot)}`);
  }
}

/**
 * checkAccess: validate the access a fault or a check is for (VM_PROT_* bits, at least one).
 * => throws EINVAL unless access is an integer 1..7
 */
export function checkAccess(fn: string, access: number): void {
  if (!Number.isInteger(access) || access < 1 || access > Prot.ALL) {
    throw new KernelError('EINVAL', `${fn}: bad access ${String(access)}`);
  }
}

/**
 * option: an option's value, or its default when it is left out -- the rule every package of loanout
 * reads its options by
 * => only undefined means "left out": null is a value (and the caller's check refuses it)
 */
export function option<T>(value: T | undefined, dflt: T): T {
  return value === undefined ? dflt : value;
}
