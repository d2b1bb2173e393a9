/*
 * page-map-control.ts: who may talk to the page map, and what a walkthrough control may say.
 *
 * The page map listens on 127.0.0.1 only, so only this machine can reach it. But this machine runs a
 * browser, and any web page open in it may try to reach a loopback port:
 *
 *   - a form or fetch() on another site, posting to http://127.0.0.1:<port>/control (cross-site
 *     request forgery): a browser always says where such a request comes from (`Origin`), so a
 *     control must come with the page map's own origin -- the one its page was loaded from;
 *   - a site whose name is made to resolve to 127.0.0.1 (DNS rebinding), which would then be "same
 *     origin" with us: its requests still name the attacker's host (`Host`), so the page map answers
 *     only requests addressed to a loopback name (127.0.0.1 or localhost, any port: a forwarded port
 *     works), and refuses the rest, pages and streams included.
 *
 * A control is also a JSON body (`content-type: application/json`, which no plain form can send, and
 * which another origin's fetch may only send after a preflight that the page map never answers) of at
 * most 256 bytes, with exactly two fields: `action`, one of the walkthrough's three, and `step`, the
 * step it is meant for. Nothing else reaches the kernel or the walkthrough: no input of the viewer's
 * but those two words.
 */
import type http from 'node:http';
import { WALKTHROUGH_ACTIONS, type WalkthroughAction } from './page-map-walkthrough.js';

/** the largest control body the page map reads, in bytes */
export const CONTROL_BODY_MAX = 256;

const LOOPBACK_NAMES = new Set(['127.0.0.1', 'localhost']);

/** A control, read: the action and the step it is meant for. */
export interface Control {
  /** what the page asks the walkthrough to do */
  action: WalkthroughAction;
  /** the step it is meant for (NarrationUpdate.step) */
  step: number;
}

/** A control refused before it reached the walkthrough: the HTTP status and why. */
export interface Refusal {
  /** the HTTP status to answer with */
  status: number;
  /** why, in words */
  error: string;
}

/**
 * hostAllowed: is the request addressed to a loopback name (the Host header's name is 127.0.0.1 or
 * localhost)? The page map serves nothing else (DNS rebinding: see the essay).
 */
export function hostAllowed(req: http.IncomingMessage): boolean {
  const host = req.headers.host;
  if (host === undefined) return false;
  try {
    return LOOPBACK_NAMES.has(new URL(`http://${host}`).hostname);
  } catch {
    return false;
  }
}

/**
 * readControl: a walkthrough control from a request to /control, or why not
 * => the request: POST, from the page map's own origin (Origin is http://<the request's Host>),
 *    content-type application/json, a body of at most CONTROL_BODY_MAX bytes that is exactly
 *    {"action": "pause" | "resume" | "next", "step": <a positive integer>}
 * => resolves to the Control, or to a Refusal: 405 (not POST), 403 (another origin, or none), 415
 *    (not JSON), 413 (too long), 400 (not that object)
 */
export async function readControl(req: http.IncomingMessage): Promise<Control | Refusal> {
  if (req.method !== 'POST') return { status: 405, error: 'POST only' };
  if (req.headers.origin === undefined || req.headers.origin !== `http://${req.headers.host}`)
    return { status: 403, error: 'controls come only from the page map itself' };
  const type = (req.headers['content-type'] ?? '').split(';')[0].trim().toLowerCase();
  if (type !== 'application/json') return { status: 415, error: 'a control is application/json' };
  const body = await readBody(req, CONTROL_BODY_MAX);
  if (body === null) return { status: 413, error: `a control is at most ${CONTROL_BODY_MAX} bytes` };
  return parseControl(body);
}

/* readBody: the request's body as text, or null (and the rest ignored) past `max` bytes */
function readBody(req: http.IncomingMessage, max: number): Promise<string | null> {
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > max) {
    req.resume();
    return Promise.resolve(null);
  }
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    let size = 0;
    req.on('data', (d: Buffer) => {
      size += d.length;
      if (size <= max) parts.push(d);
    });
    req.on('end', () => resolve(size > max ? null : Buffer.concat(parts).toString('utf8')));
    req.on('error', reject);
  });
}

/**
 * parseControl: a control body, checked: exactly {"action", "step"}, the action one of
 * WALKTHROUGH_ACTIONS, the step a positive safe integer
 * => the Control, or a Refusal with status 400 saying what is wrong
 */
export function parseControl(body: string): Control | Refusal {
  let v: unknown;
  try {
    v = JSON.parse(body);
  } catch {
    return { status: 400, error: 'a control is a JSON object' };
  }
  if (v === null || typeof v !== 'object' || Array.isArray(v))
    return { status: 400, error: 'a control is a JSON object' };
  const keys = Object.keys(v).sort();
  if (keys.length !== 2 || keys[0] !== 'action' || keys[1] !== 'step')
    return { status: 400, error: 'a control has exactly two fields: action and step' };
  const { action, step } = v as { action: unknown; step: unknown };
  if (!WALKTHROUGH_ACTIONS.includes(action as WalkthroughAction))
    return { status: 400, error: `action must be one of ${WALKTHROUGH_ACTIONS.join(', ')}` };
  if (typeof step !== 'number' || !Number.isSafeInteger(step) || step < 1)
    return { status: 400, error: 'step must be a positive integer' };
  return { action: action as WalkthroughAction, step };
}
