/*
 * echo-client.ts: `pnpm echo:client` -- sends random data to an echo server and checks what comes back.
 *
 *   pnpm echo:client [--port 7007] [--host 127.0.0.1] [--bytes 16777216] [--clients 1] [--mode loan]
 *
 * Each client is a process of a loanout kernel: it sends from its memory (by --mode) and receives into
 * it, then compares SHA-256 hashes. Exits 1 on any mismatch or error.
 *
 * How much: a client maps what it sends and what it receives, side by side, in its address space
 * (VM_MIN_ADDRESS..VM_MAX_ADDRESS, just under 1 GiB), and holds both in the kernel's RAM, with its
 * socket's receive area; all clients share one kernel, of at most MAX_PHYS_PAGES pages (1 GiB). So
 * each client needs 2 x --bytes (in whole pages) + 128 KiB, and all of them together at most 1 GiB:
 * beyond that the kernel would run out of pages and the clients wait for memory forever. Both limits
 * are checked before anything starts (a usage error, exit 2).
 */
import { createHash, randomBytes } from 'node:crypto';
import {
  Kernel,
  KernelError,
  MAX_PHYS_PAGES,
  PAGE_SIZE,
  type Proc,
  VM_MAX_ADDRESS,
  VM_MIN_ADDRESS,
} from '@loanout/core';
import { mbufStats } from '@loanout/mbuf';
import { type SendMode, sockConnect } from '@loanout/sockets';
import {
  type Command,
  countValue,
  fail,
  isMain,
  mb,
  modeValue,
  parseCommand,
  portValue,
  stringValue,
  trafficLines,
  usageError,
} from './cli.js';

/* a socket's receive area, in pages (SocketOptions' defaults: 4 chunks of 32 KiB) */
const RECV_AREA_PAGES = (4 * 32 * 1024) / PAGE_SIZE;

/* clientPages: the kernel's pages one client needs: what it sends, what it receives, its receive area */
export function clientPages(bytes: number): number {
  return 2 * Math.ceil(bytes / PAGE_SIZE) + RECV_AREA_PAGES;
}

/* the most one client may echo: half its address space, and no more than a whole kernel's RAM holds */
export const MAX_ECHO_BYTES = Math.min(
  Math.floor((VM_MAX_ADDRESS - VM_MIN_ADDRESS) / 2 / PAGE_SIZE) * PAGE_SIZE,
  Math.floor((MAX_PHYS_PAGES - RECV_AREA_PAGES) / 2) * PAGE_SIZE,
);

export const ECHO_CLIENT: Command = {
  name: 'pnpm echo:client',
  summary:
    'Sends random bytes from a loanout process to an echo server (pnpm echo), reads the echo back into\n' +
    'the same process, and checks it by SHA-256.',
  flags: {
    port: { type: 'string', value: 'PORT', help: "the echo server's port (default 7007)" },
    host: { type: 'string', value: 'ADDR', help: "the echo server's address (default 127.0.0.1)" },
    bytes: {
      type: 'string',
      value: 'N',
      help: `bytes each client sends, 1..${MAX_ECHO_BYTES} (default 16777216 = 16 MiB)`,
    },
    clients: {
      type: 'string',
      value: 'N',
      help: 'clients at once, each its own process and connection (default 1)',
    },
    mode: { type: 'string', value: 'copy|loan|auto', help: 'how the clients send (default loan)' },
  },
  notes: [
    `limits: --bytes is at most ${MAX_ECHO_BYTES} (${mb(MAX_ECHO_BYTES)}): a client maps what it sends and what it`,
    'receives side by side in its address space (just under 1 GiB), and a kernel has at most 1 GiB of RAM',
    "to hold both and the client's 128 KiB receive area. All the clients share one kernel: --clients x",
    '(2 x --bytes + 128 KiB) is at most 1 GiB.',
  ],
};

export interface EchoClientResult {
  bytes: number;
  ok: boolean;
  seconds: number;
}

/*
 * runEchoClient: one client: send `bytes` random bytes, read them back, compare hashes.
 */
export async function runEchoClient(
  kernel: Kernel,
  host: string,
  port: number,
  bytes: number,
  mode: SendMode,
): Promise<EchoClientResult> {
  const p: Proc = kernel.createProcess();
  try {
    const data = randomBytes(bytes);
    const out = p.mmap(bytes);
    const back = p.mmap(bytes);
    await p.write(out, data);
    const so = await sockConnect(kernel, { host, port });
    const t0 = performance.now();
    const sending = so.send(p, out, bytes, { mode });
    let got = 0;
    while (got < bytes) {
      const n = await so.recv(p, back + got, Math.min(1 << 20, bytes - got));
      if (n === 0) break;
      got += n;
    }
    await (await sending).done;
    const seconds = (performance.now() - t0) / 1000;
    await so.close();
    const echoed = await p.read(back, got);
    const ok = got === bytes && sha256(echoed) === sha256(data);
    return { bytes: got, ok, seconds };
  } finally {
    p.exit();
  }
}

function sha256(b: Uint8Array): string {
  return createHash('sha256').update(b).digest('hex');
}

/* whyFailed: one line for an error; only a refused connection asks whether the server runs */
function whyFailed(err: unknown, host: string, port: number): string {
  const msg = err instanceof Error ? err.message : String(err);
  if (err instanceof KernelError && err.code === 'ECONNREFUSED')
    return `${msg} (is the echo server running on ${host}:${port}? pnpm echo starts one)`;
  return msg;
}

async function main(): Promise<void> {
  const args = parseCommand(ECHO_CLIENT);
  const host = stringValue(args, 'host', '127.0.0.1');
  const port = portValue(ECHO_CLIENT, args, 'port', 7007);
  const bytes = countValue(ECHO_CLIENT, args, 'bytes', 16 * 1024 * 1024, {
    max: MAX_ECHO_BYTES,
    why: 'a client holds what it sends and what it receives in an address space and a kernel of at most 1 GiB each',
  });
  const clients = countValue(ECHO_CLIENT, args, 'clients', 1);
  const pages = clients * clientPages(bytes);
  if (pages > MAX_PHYS_PAGES)
    usageError(
      ECHO_CLIENT,
      `${clients} clients of ${bytes} bytes need ${mb(pages * PAGE_SIZE)} of kernel memory, more than the 1 GiB a kernel has`,
    );
  const mode = modeValue(ECHO_CLIENT, args, 'loan');
  /* twice what the clients need, as far as a kernel goes */
  const kernel = new Kernel({ physPages: Math.min(MAX_PHYS_PAGES, 4096 + 2 * pages) });
  const t0 = performance.now();
  const results = await Promise.all(
    Array.from({ length: clients }, () => runEchoClient(kernel, host, port, bytes, mode)),
  ).catch((err: unknown) => fail(whyFailed(err, host, port)));
  const secs = (performance.now() - t0) / 1000;
  const bad = results.filter((r) => !r.ok).length;
  const total = results.reduce((a, r) => a + r.bytes, 0);
  const m = mbufStats(kernel);
  console.log(
    `${clients} client(s) echoed ${mb(total)} in ${secs.toFixed(2)} s (${(total / 1e6 / secs).toFixed(0)} MB/s each way): ` +
      (bad === 0 ? 'all hashes match' : `${bad} MISMATCH(ES)`),
  );
  console.log(
    trafficLines([
      { direction: 'sent', how: 'by copy', bytes: m.copiedBytes, chains: m.copyChains },
      { direction: 'sent', how: 'by loan', bytes: m.loanedBytes, chains: m.loanChains },
      /* every received byte is copied out of the kernel's receive area into the process */
      { direction: 'received', how: 'by copy', bytes: total },
    ]).join('\n'),
  );
  process.exit(bad === 0 ? 0 : 1);
}

if (isMain(import.meta.url)) await main();
