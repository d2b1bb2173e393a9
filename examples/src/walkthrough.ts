/*
 * walkthrough.ts: run an example slowly enough to watch it on the live page map -- what `--ui` means
 * for the step-by-step examples (pnpm demo, pnpm cow).
 *
 * It serves the page map, prints its URL, waits until a browser has it open, then, at each step the
 * example reports, prints what to look for and pauses. Without --ui the steps are only printed.
 *
 * A step's text names the page map's colours in square brackets -- "lent to the kernel [red]" -- and
 * only the page map has colours: with --ui they are printed as "(red)", without they are left out.
 */
import type { Kernel } from '@loanout/core';
import { startPageMap } from '@loanout/pagemap';
import { onInterrupt } from './cli.js';

export interface Walkthrough {
  /* say what the page shows now, then (with the UI) give the viewer time to look */
  step(what: string): Promise<void>;
  /* with the UI: keep the page up until Ctrl-C; without: nothing */
  finish(): void;
}

/* onMap: a step's text for the terminal: its [colour] notes as "(colour)" with the page map, else none */
export function onMap(what: string, ui: boolean): string {
  return what.replace(/ \[([^\]]+)\]/g, ui ? ' ($1)' : '');
}

/*
 * walkthrough: print each step, and with `ui`, serve the page map and pause stepMs at each step
 * => with ui, resolves once a browser has the page open
 */
export async function walkthrough(
  kernel: Kernel,
  title: string,
  ui: boolean,
  stepMs: number,
): Promise<Walkthrough> {
  if (!ui) return { step: async (what) => console.log(`- ${onMap(what, false)}`), finish: () => {} };
  const map = await startPageMap(kernel, { title });
  console.log(`live page map: ${map.url}\nwaiting for it to be opened in a browser...`);
  while (map.viewers() === 0) await sleep(100);
  await sleep(1000);
  return {
    step: async (what) => {
      console.log(`- ${onMap(what, true)}`);
      await sleep(stepMs);
    },
    finish: () => {
      console.log('\nthe page map stays up; Ctrl-C to quit');
      onInterrupt(() => map.close());
    },
  };
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
