/*
 * echo-server.ts: `pnpm echo` -- an echo server on the loanout kernel.
 *
 *   pnpm echo [--port 7007] [--host 127.0.0.1] [--mode copy|loan|auto] [--max-connections 128] [--ui]
 *
 * Any TCP client works (`pnpm echo:client`, nc, python's socket). Ctrl-C prints what the kernel did
 * (loans, copies, bytes) and exits. --ui also serves a live page map of the kernel on 127.0.0.1.
 */

import { startPageMap } from '@loanout/pagemap';
import { createEchoServer, sosendAutoThreshold } from '@loanout/sockets';
import { fail, mb, parseArgs, parseCount, parseMode, parsePort } from './cli.js';

const { values } = parseArgs({
  options: {
    port: { type: 'string' },
    host: { type: 'string' },
    mode: { type: 'string' },
    'max-connections': { type: 'string' },
    ui: { type: 'boolean' },
  },
});
const mode = parseMode(values.mode, 'loan');
const server = await createEchoServer({
  host: values.host ?? '127.0.0.1',
  port: parsePort(values.port, 7007),
  mode,
  maxConnections: parseCount('max-connections', values['max-connections'], 128),
}).catch((err: Error) => fail(err.message));

const threshold = mode === 'auto' ? ` (auto loans from ${await sosendAutoThreshold()} bytes)` : '';
console.log(`loanout echo server on ${server.host}:${server.port}, mode ${mode}${threshold}; Ctrl-C to stop`);
const ui = values.ui ? await startPageMap(server.kernel, { title: 'pnpm echo' }) : null;
if (ui !== null) console.log(`live page map: ${ui.url}`);

process.once('SIGINT', async () => {
  const s = server.stats();
  const k = server.kernel.stats();
  await ui?.close();
  await server.close();
  console.log(
    `\nconnections ${s.connections}${s.dropped > 0 ? ` (and ${s.dropped} dropped: no memory for them)` : ''}, echoed ${mb(s.bytesEchoed)}: loaned ${mb(s.loanedBytes)} in ${s.loanChains} chains, ` +
      `copied ${mb(s.copiedBytes)} in ${s.copyChains} chains; kernel loans ${k.loans}, loan breaks ${k.loanBreaks}, ` +
      `cow faults ${k.cowFaults}`,
  );
  process.exit(0);
});
