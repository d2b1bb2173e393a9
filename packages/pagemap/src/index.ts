/*
 * @loanout/pagemap: the live page map -- watch a loanout kernel's frames, loans and counters in a
 * browser while it runs. See README.md.
 */

export type { PageMap, PageMapOptions } from './page-map-server.js';
export { startPageMap } from './page-map-server.js';
