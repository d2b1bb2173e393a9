/*
 * echo-client.ts: `pnpm echo:client` -- sends random data to an echo server and checks what comes back.
 *
 *   pnpm echo:client [--port 7007] [--host 127.0.0.1] [--bytes 16777216] [--clients 1] [--mode loan]
 *
 * Each client is a process of a loanout kernel: it sends from its memory (by --mode) and receives into
 * it, then compares SHA-256 hashes. Exits non-zero on any mismatch or error.
 */
import { createHash, randomBytes } from 'node:crypto';
import { Kernel, type Proc } from '@loanout/core';
import { type SendMode, sockConnect } from '@loanout/sockets';
import { fail, mb, parseArgs, parseCount, parseMode, parsePort } from './cli.js';

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

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      port: { type: 'string' },
      host: { type: 'string' },
      bytes: { type: 'string' },
      clients: { type: 'string' },
      mode: { type: 'string' },
    },
  });
  const host = values.host ?? '127.0.0.1';
  const port = parsePort(values.port, 7007);
  const bytes = parseCount('bytes', values.bytes, 16 * 1024 * 1024);
  const clients = parseCount('clients', values.clients, 1);
  const mode = parseMode(values.mode, 'loan');
  const kernel = new Kernel({
    physPages: Math.min(262144, 4096 + Math.ceil((2 * bytes * clients) / 4096) * 2),
  });
  const t0 = performance.now();
  const results = await Promise.all(
    Array.from({ length: clients }, () => runEchoClient(kernel, host, port, bytes, mode)),
  ).catch((err: Error) => fail(`${err.message} (is the echo server running on ${host}:${port}?)`));
  const secs = (performance.now() - t0) / 1000;
  const bad = results.filter((r) => !r.ok).length;
  const total = results.reduce((a, r) => a + r.bytes, 0);
  console.log(
    `${clients} client(s) echoed ${mb(total)} in ${secs.toFixed(2)} s (${(total / 1e6 / secs).toFixed(0)} MB/s each way): ` +
      (bad === 0 ? 'all hashes match' : `${bad} MISMATCH(ES)`),
  );
  process.exit(bad === 0 ? 0 : 1);
}

if (import.meta.url === `file://${process.argv[1]}`) await main();
