/*
 * errors.ts: the two ways the kernel says no.
 *
 * A KernelError is an expected failure a caller can handle: a bad argument, an unmapped address, no
 * memory left that could be reclaimed. It carries an errno-style `code`, and its message names the
 * function that refused ("uvm_loan: start 0x1001 is not page-aligned").
 *
 * A KernelPanic is a broken invariant: the kernel's own bookkeeping is wrong, or a caller did something
 * a real kernel would panic on (unloaning a page that is not loaned, a kernel write to a loaned page).
 * Nothing should catch a panic except a test that provokes one on purpose.
 */

/** The errno-style codes a KernelError carries. */
export type KernelErrorCode =
  | 'EFAULT'
  | 'EINVAL'
  | 'ENOMEM'
  | 'ENOENT'
  | 'EIO'
  | 'EBUSY'
  | 'EAGAIN'
  | 'EINTR'
  | 'EACCES'
  | 'ESRCH'
  | 'ENOSPC'
  | 'EPIPE'
  | 'ECONNRESET'
  | 'ECONNABORTED'
  | 'ECONNREFUSED'
  | 'ENOTCONN'
  | 'ETIMEDOUT'
  | 'EADDRINUSE'
  | 'EMFILE'
  | 'ESHUTDOWN';

/**
 * KernelError: an expected failure (a bad argument, no memory, an unmapped address, ...), with an errno-style
 * `code`; its message names the function that refused.
 */
export class KernelError extends Error {
  /** always 'KernelError' */
  override readonly name = 'KernelError';
  /** what went wrong, errno-style (EINVAL, EFAULT, ENOMEM, ...) */
  readonly code: KernelErrorCode;

  /** a KernelError with `code` and `message` (which names the function), and optionally its cause */
  constructor(code: KernelErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }
}

/**
 * KernelPanic: a broken kernel invariant (NetBSD's panic) -- a bug, in the kernel or in a caller that broke a
 * contract, never an expected failure.
 */
export class KernelPanic extends Error {
  /** always 'KernelPanic' */
  override readonly name = 'KernelPanic';
}

/**
 * panic: throw a KernelPanic.
 * => never returns
 */
export function panic(message: string): never {
  throw new KernelPanic(message);
}

/**
 * kassert: panic with `message` unless `cond` holds (NetBSD's KASSERT).
 */
export function kassert(cond: boolean, message: string): asserts cond {
  if (!cond) panic(message);
}
