/*
 * echo-server.ts: `pnpm echo` -- an echo server on the loanout kernel.
 *
 *   pnpm echo [--port 7007] [--host 127.0.0.1] [--mode copy|loan|auto|zerocopy] [--max-connections 128]
 *             [--idle-timeout 60] [--ui]
 *
 * Any TCP client works (`pnpm echo:client`, nc, python's socket). Ctrl-C prints what the kernel did
 * -- the bytes received and sent, and how each moved (copy, page transfer, loan) -- and exits 0. --ui also serves a
 * live page map of the kernel on 127.0.0.1.
 */
import type { KernelStats } from '@loanout/core';
import { startPageMap } from '@loanout/pagemap';
import { createEchoServer, type EchoMode, type EchoStats, sosendAutoThreshold } from '@loanout/sockets';
import {
  type Command,
  countValue,
  echoModeValue,
  fail,
  isMain,
  mb,
  onInterrupt,
  parseCommand,
  portValue,
  secondsValue,
  stringValue,
  type Traffic,
  trafficLines,
} from './cli.js';

export const ECHO: Command = {
  name: 'pnpm echo',
  summary:
    'An echo server on the loanout kernel, one process per connection; any TCP client works\n' +
    '(pnpm echo:client, nc 127.0.0.1 7007). Ctrl-C prints the bytes received and sent, and how each\n' +
    'moved (by copy, by page transfer, by loan), then exits. --mode zerocopy copies nothing either way.',
  flags: {
    port: {
      type: 'string',
      value: 'PORT',
      help: 'port to listen on, 0..65535; 0 picks a free one (default 7007)',
    },
    host: { type: 'string', value: 'ADDR', help: 'address to listen on (default 127.0.0.1)' },
    mode: {
      type: 'string',
      value: 'copy|loan|auto|zerocopy',
      help:
        'how bytes move: received by copy and sent back copied, loaned, or loaned from a size measured\n' +
        'here; or zerocopy: received by page transfer and sent back by loan (default loan)',
    },
    'max-connections': {
      type: 'string',
      value: 'N',
      help: 'connections served at once, a whole number (default 128); more are refused',
    },
    'idle-timeout': {
      type: 'string',
      value: 'SECONDS',
      help: 'close a connection that has made no progress for this long; 0 never (default 60)',
    },
    ui: { type: 'boolean', help: 'also serve the live page map of the kernel on 127.0.0.1' },
  },
};

/*
 * echoTraffic: what crossed the network, each way: received by copy (out of the kernel's receive area
 * into the process) or by page transfer (the receive area's pages became the process's), sent by
 * copy or by loan
 */
export function echoTraffic(s: EchoStats): Traffic[] {
  return [
    { direction: 'received', how: 'by copy', bytes: s.recvCopiedBytes },
    { direction: 'received', how: 'by transfer', bytes: s.recvTransferredBytes },
    { direction: 'sent', how: 'by copy', bytes: s.copiedBytes, chains: s.copyChains },
    { direction: 'sent', how: 'by loan', bytes: s.loanedBytes, chains: s.loanChains },
  ];
}

/* echoReport: the lines Ctrl-C prints */
export function echoReport(s: EchoStats, k: KernelStats): string[] {
  const dropped = s.dropped > 0 ? ` (and ${s.dropped} dropped: no memory for them)` : '';
  const refused = s.refused > 0 ? ` (and ${s.refused} refused: --max-connections were open)` : '';
  const idle = s.idleClosed > 0 ? `, ${s.idleClosed} closed idle` : '';
  return [
    `connections ${s.connections}${dropped}${refused}${idle}, echoed ${mb(s.bytesEchoed)}:`,
    ...trafficLines(echoTraffic(s)),
    ...(s.recvZeroFilledBytes > 0
      ? [`  pages that came in partly filled were zeroed after the bytes: ${s.recvZeroFilledBytes} bytes`]
      : []),
    `kernel: loans ${k.loans}, loan breaks ${k.loanBreaks} (writes to a page on loan, which got a copy), ` +
      `copy-on-write faults ${k.cowFaults}`,
  ];
}

/* what the page map says is running, by mode: how bytes move in and out, and how to drive it */
const ECHO_MOVES: Record<EchoMode, string> = {
  copy: 'bytes come in by copy and go back by copy',
  loan: 'bytes come in by copy and go back by loan (watch frames turn red while they are on the wire)',
  auto: 'bytes come in by copy and go back by copy or by loan, by size',
  zerocopy:
    "no byte is copied: pages come in by page transfer (a socket's receive area, kernel memory, becomes " +
    "the process's) and go back by loan",
};

/* echoAbout: the page map's line under its title */
export function echoAbout(mode: EchoMode, port: number): string {
  return `an echo server, mode ${mode}: ${ECHO_MOVES[mode]}. Send it something: pnpm echo:client --port ${port}`;
}

async function main(): Promise<void> {
  const args = parseCommand(ECHO);
  const mode = echoModeValue(ECHO, args, 'loan');
  const server = await createEchoServer({
    host: stringValue(args, 'host', '127.0.0.1'),
    port: portValue(ECHO, args, 'port', 7007),
    mode,
    maxConnections: countValue(ECHO, args, 'max-connections', 128),
    idleTimeoutMs: secondsValue(ECHO, args, 'idle-timeout', 60) * 1000,
  }).catch((err: Error) => fail(err.message));
  const threshold = mode === 'auto' ? ` (auto loans from ${await sosendAutoThreshold()} bytes)` : '';
  console.log(
    `loanout echo server on ${server.host}:${server.port}, mode ${mode}${threshold}; Ctrl-C to stop`,
  );
  const ui = args.values.ui
    ? await startPageMap(server.kernel, { title: 'pnpm echo', about: echoAbout(mode, server.port) })
    : null;
  if (ui !== null) console.log(`live page map: ${ui.url}`);

  onInterrupt(async () => {
    const s = server.stats();
    const k = server.kernel.stats();
    await ui?.close();
    await server.close();
    console.log(`\n${echoReport(s, k).join('\n')}`);
  });
}

if (isMain(import.meta.url)) await main();
