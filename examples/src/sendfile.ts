/*
 * sendfile.ts: `pnpm sendfile <file>` -- serve a real file over TCP by page loan, without copying it.
 *
 *   pnpm sendfile <file> [--port 7008] [--host 127.0.0.1] [--once] [--ui]
 *
 * For each connection, a process maps the file (a vnode object: its pages are read from the file
 * through node:fs on first touch) and sends the mapping by O->K loans: the file's pages go to the
 * network as they sit in the page cache. `nc 127.0.0.1 7008 > copy` fetches it. --ui also serves a
 * live page map: the file's pages (green) turn red while they are on loan to the network.
 */
import { Kernel, KernelError, type Proc, VnodeObject } from '@loanout/core';
import { startPageMap } from '@loanout/pagemap';
import { type Listener, sockListen } from '@loanout/sockets';
import { type Command, fail, isMain, mb, onInterrupt, parseCommand, portValue, stringValue } from './cli.js';

export const SENDFILE: Command = {
  name: 'pnpm sendfile',
  summary:
    'Serves a real file over TCP by page loan (O->K), without copying it: every connection gets the\n' +
    'whole file (nc 127.0.0.1 7008 > copy). Ctrl-C prints what was served and exits.',
  argument: { name: '<file>', help: 'the file to serve' },
  flags: {
    port: {
      type: 'string',
      value: 'PORT',
      help: 'port to listen on, 0..65535; 0 picks a free one (default 7008)',
    },
    host: { type: 'string', value: 'ADDR', help: 'address to listen on (default 127.0.0.1)' },
    once: { type: 'boolean', help: 'serve one connection, report, and exit' },
    ui: {
      type: 'boolean',
      help: "also serve the live page map: the file's pages (green) turn red while on loan to the network",
    },
  },
};

export interface SendfileServer {
  listener: Listener;
  kernel: Kernel;
  /* connections served and bytes sent, all by loan */
  served(): { connections: number; bytes: number; loanedBytes: number };
}

/*
 * serveFile: listen on host:port and send `path` to every connection by O->K loans.
 * => throws ENOENT for a missing file (checked before listening), EADDRINUSE
 */
export async function serveFile(
  path: string,
  host: string,
  port: number,
  kernel = new Kernel(),
): Promise<SendfileServer> {
  const check = kernel.createProcess();
  await check.mmapFile(path).finally(() => check.exit());
  const counts = { connections: 0, bytes: 0, loanedBytes: 0 };
  const listener = await sockListen(kernel, { host, port }, async (so) => {
    const p = kernel.createProcess();
    try {
      const va = await p.mmapFile(path);
      const size = fileSize(p, va);
      const r = await so.send(p, va, size, { mode: 'loan' });
      await r.done;
      counts.connections++;
      counts.bytes += r.bytes;
      counts.loanedBytes += r.loanedBytes;
      await so.close();
    } finally {
      p.exit();
    }
  });
  return { listener, kernel, served: () => ({ ...counts }) };
}

/* fileSize: the size of the file mapped at va (its vnode object's) */
function fileSize(p: Proc, va: number): number {
  const obj = p.map.lookup(va)?.object;
  if (!(obj instanceof VnodeObject)) throw new KernelError('EINVAL', 'sendfile: not a file mapping');
  return obj.size;
}

async function main(): Promise<void> {
  const args = parseCommand(SENDFILE);
  const path = args.argument!;
  const srv = await serveFile(
    path,
    stringValue(args, 'host', '127.0.0.1'),
    portValue(SENDFILE, args, 'port', 7008),
  ).catch((err: Error) => fail(err.message));
  console.log(`serving ${path} on ${srv.listener.host}:${srv.listener.port} by page loan; Ctrl-C to stop`);
  const about =
    `serving ${path} on port ${srv.listener.port} by page loan (O->K): fetch it with ` +
    `nc 127.0.0.1 ${srv.listener.port} > copy, and watch the file's pages [green] go on loan [red]`;
  const ui = args.values.ui ? await startPageMap(srv.kernel, { title: 'pnpm sendfile', about }) : null;
  if (ui !== null) console.log(`live page map: ${ui.url}`);
  const report = onInterrupt(async () => {
    const s = srv.served();
    const k = srv.kernel.stats();
    await ui?.close();
    await srv.listener.close();
    console.log(
      `\nserved ${s.connections} connection(s), ${mb(s.bytes)} (${mb(s.loanedBytes)} loaned): ` +
        `O->K loans ${k.loansObj}, page-ins from the file ${k.pageins}`,
    );
  });
  if (args.values.once) {
    const timer = setInterval(() => {
      if (srv.served().connections > 0) {
        clearInterval(timer);
        void report();
      }
    }, 50);
  }
}

if (isMain(import.meta.url)) await main();
