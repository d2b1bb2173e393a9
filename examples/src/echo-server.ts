/*
 * echo-server.ts: `pnpm echo` -- an echo server on the loanout kernel.
 *
 *   pnpm echo [--port 7007] [--host 127.0.0.1] [--mode copy|loan|auto] [--max-connections 128]
 *             [--idle-timeout 60] [--ui]
 *
 * Any TCP client works (`pnpm echo:client`, nc, python's socket). Ctrl-C prints what the kernel did
 * (loans, copies, bytes) and exits. --ui also serves a live page map of the kernel on 127.0.0.1.
 */
import { createEchoServer, sosendAutoThreshold } from '@loanout/sockets';
import { fail, mb, parseArgs, parseCount, parseMode, parsePort, parseSeconds } from './cli.js';
import { startPageMap } from './ui/page-map-server.js';

const { values } = parseArgs({
  options: {
    port: { type: 'string' },
    host: { type: 'string' },
    mode: { type: 'string' },
    'max-connections': { type: 'string' },
    'idle-timeout': { type: 'string' },
    ui: { type: 'boolean' },
  },
});
const mode = parseMode(values.mode, 'loan');
const server = await createEchoServer({
  host: values.host ?? '127.0.0.1',
  port: parsePort(values.port, 7007),
  mode,
  maxConnections: parseCount('max-connections', values['max-connections'], 128),
  idleTimeoutMs: parseSeconds('idle-timeout', values['idle-timeout'], 60) * 1000,
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
    `\nconnections ${s.connections}${s.dropped > 0 ? ` (and ${s.dropped} dropped: no memory for them)` : ''}` +
      `${s.refused > 0 ? ` (and ${s.refused} refused: --max-connections were open)` : ''}` +
      `${s.idleClosed > 0 ? `, ${s.idleClosed} closed idle` : ''}, echoed ${mb(s.bytesEchoed)}: loaned ${mb(s.loanedBytes)} in ${s.loanChains} chains, ` +
      `copied ${mb(s.copiedBytes)} in ${s.copyChains} chains; kernel loans ${k.loans}, loan breaks ${k.loanBreaks}, ` +
      `cow faults ${k.cowFaults}`,
  );
  process.exit(0);
});
