/*
 * @loanout/mbuf: network buffers for the loanout kernel -- copied clusters and loaned user pages.
 */

export type { MbufExt } from './mbuf.js';
export {
  M_EXT,
  M_EXT_CLUSTER,
  M_EXT_PAGES,
  M_EXT_ROMAP,
  M_PKTHDR,
  Mbuf,
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
export type { MbufOptions, MbufStats } from './mbuf_system.js';
export { MbufSystem, mbufInit, mbufStats, mbufSystem } from './mbuf_system.js';
export { KvaBudget } from './sokva.js';
export { Pool } from './subr_pool.js';
