/*
 * @loanout/mbuf: network buffers for the loanout kernel -- copied clusters and loaned user pages.
 *
 * Mbufs and the mbuf system are made by the functions here (the chain builders, mbufInit), never by
 * `new`: they are exported as types, their fields readonly to users. The cluster pool (subr_pool.ts)
 * and the loan budget (sokva.ts) are internals; mbufStats reports them.
 */

export type { Mbuf, MbufExt } from './mbuf.js';
export {
  M_EXT,
  M_EXT_CLUSTER,
  M_EXT_PAGES,
  M_EXT_ROMAP,
  M_PKTHDR,
  MCLBYTES,
  mAdj,
  mBuffers,
  mCat,
  mCopyback,
  mCopydata,
  mFree,
  mFreem,
  mLength,
} from './mbuf.js';
export type { MbufLoanOptions, MbufWaitOptions } from './mbuf_loan.js';
export {
  mbufCopyin,
  mbufCopyinAnons,
  mbufCopyinNow,
  mbufLoan,
  mbufLoanAnons,
  mbufLoanNow,
} from './mbuf_loan.js';
export type { MbufOptions, MbufStats, MbufSystem } from './mbuf_system.js';
export { mbufInit, mbufStats, mbufSystem } from './mbuf_system.js';
