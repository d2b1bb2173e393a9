/*
 * walkthrough.ts: run an example slowly enough to watch it on the live page map -- what `--ui` means
 * for the step-by-step examples (pnpm demo, pnpm cow).
 *
 * It serves the page map, prints its URL, waits until a browser has it open, then, at each step the
 * example reports, prints what to look for and holds there. Without --ui the steps are only printed.
 *
 * With --ui each step is also narrated on the page (its title, and the same words), in step with the
 * kernel: the page gets the step's words together with the frames as they are at that step. The page
 * has pause, resume and next-step buttons, which hold the walkthrough (the kernel waits at the step),
 * let it go on by itself again (--step-ms a step), or move to the next step now; the terminal says when
 * the page paused or stepped it.
 *
 * A step's text names the page map's colours in square brackets -- "lent to the kernel [red]". The
 * page draws them as swatches of those colours; the terminal prints them as "(red)" with --ui, and
 * leaves them out without (there are no colours without the page map).
 */
import type { Kernel } from '@loanout/core';
import { startPageMap, type WalkthroughAction } from '@loanout/pagemap';
import { onInterrupt } from './cli.js';

export interface Walkthrough {
  /* say what the page shows now (a title, and what happened and what to look for), then (with the UI)
     hold there: --step-ms, or as long as the viewer pauses it on the page */
  step(title: string, what: string): Promise<void>;
  /* with the UI: the page says the walkthrough is over and stays up until Ctrl-C; without: nothing */
  finish(): void;
}

export interface WalkthroughOptions {
  /* how many steps there are, for the page's "step 3 of 8" */
  steps?: number;
  /* a sentence under the page's title: what is running */
  about?: string;
}

/* the most milliseconds a step may last (a timer's limit) */
export const MAX_STEP_MS = 2 ** 31 - 1;

/* onMap: a step's text for the terminal: its [colour] notes as "(colour)" with the page map, else none */
export function onMap(what: string, ui: boolean): string {
  return what.replace(/ \[([^\]]+)\]/g, ui ? ' ($1)' : '');
}

/* what the terminal says when the viewer acts on the page */
const ON_CONTROL: Record<WalkthroughAction, string> = {
  pause: '  (paused on the page: the walkthrough waits there until you resume or step)',
  resume: '  (resumed on the page)',
  next: '  (next step, asked on the page)',
};

/*
 * walkthrough: print each step, and with `ui`, serve the page map, narrate each step on it and hold
 * there stepMs (or as long as the viewer pauses)
 * => with ui, resolves once a browser has the page open
 */
export async function walkthrough(
  kernel: Kernel,
  title: string,
  ui: boolean,
  stepMs: number,
  opts: WalkthroughOptions = {},
): Promise<Walkthrough> {
  if (!ui) return { step: async (_t, what) => console.log(`- ${onMap(what, false)}`), finish: () => {} };
  const map = await startPageMap(kernel, { title, about: opts.about });
  console.log(`live page map: ${map.url}\nwaiting for it to be opened in a browser...`);
  while (map.viewers() === 0) await sleep(100);
  await sleep(1000);
  const walk = map.walkthrough({
    steps: opts.steps,
    onControl: (action) => console.log(ON_CONTROL[action]),
  });
  return {
    step: async (stepTitle, what) => {
      console.log(`- ${onMap(what, true)}`);
      await walk.step({ title: stepTitle, text: what }, stepMs);
    },
    finish: () => {
      walk.done();
      console.log('\nthe page map stays up; Ctrl-C to quit');
      onInterrupt(() => map.close());
    },
  };
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
