/*
 * cow.ts: `pnpm cow` -- a write after a zero-copy send breaks the loan, and the wire keeps the old bytes.
 *
 * A peer that is slow to read keeps the sent data in flight. Meanwhile the sender overwrites its
 * buffer. The loaned pages were made read-only by the loan, so the write faults; the fault handler
 * gives the writer a copy (loan break) and leaves the loaned page, unchanged, to the network. The
 * counters before and after show it; the peer's hash shows what went on the wire.
 */
import { createHash } from 'node:crypto';
import net from 'node:net';
import { Kernel, type KernelStats, PAGE_SIZE } from '@loanout/core';
import { sockConnect } from '@loanout/sockets';

export interface CowResult {
  sentHash: string;
  receivedHash: string;
  overwrittenHash: string;
  before: KernelStats;
  afterWrite: KernelStats;
  afterDone: KernelStats;
}

/*
 * runCowDemo: send `pages` pages by loan to a peer that reads only after the sender has overwritten
 * the buffer; returns the hashes and the kernel's counters at each step.
 */
export async function runCowDemo(pages = 2048): Promise<CowResult> {
  const len = pages * PAGE_SIZE;
  const received: Buffer[] = [];
  let peer: net.Socket | null = null;
  const gotAll = new Promise<void>((resolve) => {
    const server = net.createServer((s) => {
      peer = s;
      s.pause();
      s.on('data', (d) => received.push(d));
      s.on('end', () => {
        server.close();
        resolve();
      });
    });
    server.listen(0, '127.0.0.1', () => void start((server.address() as net.AddressInfo).port));
  });
  const k = new Kernel({ physPages: 3 * pages + 1024 });
  const p = k.createProcess();
  const va = p.mmap(len);
  const original = Buffer.alloc(len, 'original ');
  await p.write(va, original);
  const out = {} as CowResult;
  async function start(port: number): Promise<void> {
    const so = await sockConnect(k, { port, sendHighWater: 2 * len });
    out.before = k.stats();
    const r = await so.send(p, va, len, { mode: 'loan' });
    await p.write(va, Buffer.alloc(len, 'OVERWRITE'));
    out.afterWrite = k.stats();
    peer?.resume();
    await r.done;
    out.afterDone = k.stats();
    await so.close();
  }
  await gotAll;
  out.sentHash = sha256(original);
  out.receivedHash = sha256(Buffer.concat(received));
  out.overwrittenHash = sha256(await p.read(va, len));
  p.exit();
  k.checkInvariants();
  return out;
}

function sha256(b: Uint8Array): string {
  return createHash('sha256').update(b).digest('hex').slice(0, 16);
}

async function main(): Promise<void> {
  const r = await runCowDemo();
  const row = (name: string, s: KernelStats) =>
    `${name.padEnd(24)} loaned pages ${String(s.loanedPages).padStart(3)}  loan breaks ${String(s.loanBreaks).padStart(3)}  cow faults ${String(s.cowFaults).padStart(3)}  orphans freed ${s.orphansFreed}`;
  console.log(row('before send', r.before));
  console.log(row('after user overwrite', r.afterWrite));
  console.log(row('after done', r.afterDone));
  console.log(`\nhash of the bytes sent:        ${r.sentHash}`);
  console.log(
    `hash of what the peer got:     ${r.receivedHash}  ${r.receivedHash === r.sentHash ? '(the original: the wire kept the old bytes)' : '(DIFFERENT!)'}`,
  );
  console.log(`hash of the sender's buffer:   ${r.overwrittenHash}  (the new bytes, in fresh pages)`);
}

if (import.meta.url === `file://${process.argv[1]}`) await main();
