/*
 * @loanout/mbuf: not built yet -- see the open issues. This shell keeps the workspace layout whole.
 */
export const PACKAGE = '@loanout/mbuf';
