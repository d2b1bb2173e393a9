/*
 * cli.ts: the small bits every example's command line shares.
 */
import { parseArgs } from 'node:util';
import type { SendMode } from '@loanout/sockets';

export function parsePort(s: string | undefined, dflt: number): number {
  if (s === undefined) return dflt;
  const n = Number(s);
  if (!Number.isInteger(n) || n < 0 || n > 65535) fail(`bad --port ${s}`);
  return n;
}

export function parseMode(s: string | undefined, dflt: SendMode): SendMode {
  const m = s ?? dflt;
  if (m !== 'copy' && m !== 'loan' && m !== 'auto') fail(`bad --mode ${m} (copy, loan or auto)`);
  return m;
}

export function parseCount(name: string, s: string | undefined, dflt: number): number {
  if (s === undefined) return dflt;
  const n = Number(s);
  if (!Number.isSafeInteger(n) || n < 1) fail(`bad --${name} ${s}`);
  return n;
}

/* parseSeconds: a whole number of seconds, 0 or more (0: never) */
export function parseSeconds(name: string, s: string | undefined, dflt: number): number {
  if (s === undefined) return dflt;
  const n = Number(s);
  if (!Number.isSafeInteger(n) || n < 0 || n > 2_147_483) fail(`bad --${name} ${s} (seconds, 0 = never)`);
  return n;
}

export function fail(msg: string): never {
  console.error(`error: ${msg}`);
  process.exit(2);
}

export { parseArgs };

export function mb(bytes: number): string {
  return `${(bytes / (1024 * 1024)).toFixed(1)} MiB`;
}
