/*
 * page-map-walkthrough.ts: a walkthrough narrated on the page map, paced by the viewer.
 *
 * A walkthrough (pnpm demo --ui, pnpm cow --ui) does something to the kernel, then stops at a step: it
 * says what happened and what to look for, and waits. Here that wait is shared with the page: the
 * step's words go into every update the page gets (in the same message as the frame states, so the
 * page never shows a step's words beside another step's memory), and the viewer may pause the
 * walkthrough, resume it, or ask for the next step at once.
 *
 *   running   a step lasts `ms`, then the walkthrough moves on by itself
 *   paused    the step lasts until the viewer resumes (the step then lasts `ms` again) or asks for
 *             the next step (which starts paused as well: stepping one at a time)
 *   done      the last step has been shown; there is nothing left to control
 *
 * Controls name the step they were meant for (`step`, the sequence number the page was shown): a
 * second click on "next" made before the page has seen the next step is refused as stale instead of
 * skipping a step the viewer never saw. Nothing else can be asked: the three actions, on the step
 * that is showing. The HTTP side of it (who may ask) is page-map-control.ts.
 */
import { KernelError } from '@loanout/core';

/** A step's words on the page: a short title, and what happened and what to look for. */
export interface Narration {
  /** a few words: "O->A: a file's pages lent to anons" */
  title: string;
  /**
   * a sentence or two; a note in square brackets naming one of the page map's colours -- `[red]`,
   * `[blue: the sender's new pages]` -- is drawn as a swatch of that colour (red, blue, green, yellow,
   * purple, black, grey, brown)
   */
  text: string;
}

/** What the viewer may ask of a walkthrough from the page. */
export type WalkthroughAction = 'pause' | 'resume' | 'next';

/** the actions, in the order the page offers them */
export const WALKTHROUGH_ACTIONS: readonly WalkthroughAction[] = ['pause', 'resume', 'next'];

/** Where a walkthrough is: moving on by itself, held by the viewer, or over. */
export type WalkthroughState = 'running' | 'paused' | 'done';

/** What {@link PageMap.walkthrough} accepts; every field is optional. */
export interface WalkthroughOptions {
  /** how many steps there will be, shown as "step 3 of 8"; a positive integer */
  steps?: number;
  /** told of every action the viewer takes on the page (after it took effect): for a terminal's "paused" */
  onControl?: (action: WalkthroughAction, step: number) => void;
}

/** A walkthrough on a page map, as {@link PageMap.walkthrough} returns it. */
export interface Walkthrough {
  /**
   * step: show a step on the page and hold the caller there.
   * => narration: a title and a text, non-empty strings of at most 2000 characters; ms: an integer
   *    0..2^31-1, how long the step lasts while the walkthrough runs
   * => resolves after `ms` while running; while paused, once the viewer resumes (and `ms` more) or asks
   *    for the next step; at once when the page map closes
   * => throws KernelError EINVAL (bad narration or ms), EBUSY (a step is still waiting), ESHUTDOWN
   *    (the walkthrough is done, or its page map closed)
   */
  step(narration: Narration, ms: number): Promise<void>;
  /**
   * done: the walkthrough is over -- the page says so, keeps the last step's words and offers no
   * controls; a step still waiting is released. Idempotent.
   */
  done(): void;
  /** where it is now */
  readonly state: WalkthroughState;
}

/** The walkthrough as every update carries it (`narration` in the event stream). */
export interface NarrationUpdate {
  /** the step's sequence number, from 1: what a control must name */
  step: number;
  /** the number of steps, if the walkthrough said */
  of: number | null;
  /** the step's title */
  title: string;
  /** what the step says */
  text: string;
  /** running, paused or done */
  state: WalkthroughState;
  /** while running, milliseconds until the walkthrough moves on by itself; else null */
  remainingMs: number | null;
}

const TEXT_MAX = 2000;
const MS_MAX = 2 ** 31 - 1;

/** @internal the walkthrough state machine behind {@link Walkthrough}; `changed` is told of every change */
export class WalkthroughRun implements Walkthrough {
  /** running, paused or done */
  state: WalkthroughState = 'running';
  private seq = 0;
  private shown: Narration | null = null;
  private ms = 0;
  private deadline: number | null = null;
  private timer: ReturnType<typeof setTimeout> | null = null;
  private release: (() => void) | null = null;
  private closed = false;

  /** a walkthrough with its options, telling `changed` of every change */
  constructor(
    private readonly opts: WalkthroughOptions,
    private readonly changed: () => void,
  ) {}

  /** step: show a narration (see Walkthrough.step) */
  step(narration: Narration, ms: number): Promise<void> {
    checkNarration(narration);
    if (!Number.isInteger(ms) || ms < 0 || ms > MS_MAX)
      throw new KernelError(
        'EINVAL',
        `walkthrough step: ms must be an integer 0..${MS_MAX}, not ${String(ms)}`,
      );
    if (this.closed || this.state === 'done')
      throw new KernelError('ESHUTDOWN', 'walkthrough step: the walkthrough is over');
    if (this.release !== null)
      throw new KernelError('EBUSY', 'walkthrough step: the previous step is still waiting');
    this.seq++;
    this.shown = { title: narration.title, text: narration.text };
    this.ms = ms;
    const held = new Promise<void>((resolve) => {
      this.release = resolve;
    });
    if (this.state === 'running') this.arm();
    this.changed();
    return held;
  }

  /** done: the walkthrough is over (see Walkthrough.done) */
  done(): void {
    if (this.state === 'done') return;
    this.state = 'done';
    this.finishStep();
    this.changed();
  }

  /** act: what the viewer asked, on the step it names; returns null if done, else why not (the state is unchanged) */
  act(action: WalkthroughAction, step: number): string | null {
    if (this.state === 'done' || this.closed) return 'the walkthrough is over';
    if (step !== this.seq) return `stale: the walkthrough is at step ${this.seq}, not ${step}`;
    if (action === 'next' && this.release === null)
      return `stale: step ${step} is over, the next is on its way`;
    if (action === 'pause' && this.state === 'running') {
      this.disarm();
      this.state = 'paused';
    } else if (action === 'resume' && this.state === 'paused') {
      this.state = 'running';
      if (this.release !== null) this.arm();
    } else if (action === 'next') this.finishStep();
    this.changed();
    this.opts.onControl?.(action, step);
    return null;
  }

  /** close: the page map closes -- release a waiting step, accept nothing more */
  close(): void {
    this.closed = true;
    this.finishStep();
  }

  /** view: the walkthrough for an update; null before its first step */
  view(now = performance.now()): NarrationUpdate | null {
    if (this.shown === null) return null;
    const remaining = this.deadline === null ? null : Math.max(0, Math.round(this.deadline - now));
    return {
      step: this.seq,
      of: this.opts.steps ?? null,
      ...this.shown,
      state: this.state,
      remainingMs: remaining,
    };
  }

  private arm(): void {
    this.disarm();
    this.deadline = performance.now() + this.ms;
    this.timer = setTimeout(() => {
      this.finishStep();
      this.changed();
    }, this.ms);
  }

  private disarm(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    this.deadline = null;
  }

  /* finishStep: the step is over: stop its timer and let its caller go on */
  private finishStep(): void {
    this.disarm();
    const release = this.release;
    this.release = null;
    release?.();
  }
}

function checkNarration(n: Narration): void {
  if (n === null || typeof n !== 'object')
    throw new KernelError('EINVAL', 'walkthrough step: narration must be { title, text }');
  for (const key of ['title', 'text'] as const) {
    const s = n[key];
    if (typeof s !== 'string' || s.length === 0 || s.length > TEXT_MAX)
      throw new KernelError(
        'EINVAL',
        `walkthrough step: ${key} must be a string of 1..${TEXT_MAX} characters`,
      );
  }
}

/**
 * checkWalkthroughOptions: what {@link PageMap.walkthrough} accepts
 * => throws KernelError EINVAL for options that are not an object, a `steps` that is not a positive
 *    integer, an `onControl` that is not a function
 */
export function checkWalkthroughOptions(opts: WalkthroughOptions): void {
  if (opts === null || typeof opts !== 'object')
    throw new KernelError('EINVAL', 'page map walkthrough: bad options');
  const { steps, onControl } = opts;
  if (steps !== undefined && (!Number.isSafeInteger(steps) || steps < 1))
    throw new KernelError(
      'EINVAL',
      `page map walkthrough: steps must be a positive integer, not ${String(steps)}`,
    );
  if (onControl !== undefined && typeof onControl !== 'function')
    throw new KernelError('EINVAL', 'page map walkthrough: onControl must be a function');
}
