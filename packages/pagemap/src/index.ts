/*
 * @loanout/pagemap: the live page map -- watch a loanout kernel's frames, loans and counters in a
 * browser while it runs, and narrate a walkthrough on it. See README.md.
 */

export type { PageMap, PageMapOptions } from './page-map-server.js';
export { startPageMap } from './page-map-server.js';
export type {
  Narration,
  NarrationUpdate,
  Walkthrough,
  WalkthroughAction,
  WalkthroughOptions,
  WalkthroughState,
} from './page-map-walkthrough.js';
export { WALKTHROUGH_ACTIONS } from './page-map-walkthrough.js';
