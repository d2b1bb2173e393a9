// try-loanout.ts: the four packages from their tarballs, as your own project would use them: a loan,
// a send by loan to a TCP server on 127.0.0.1, and the live page map.
import { type AddressInfo, createServer } from 'node:net';
import { Kernel, KernelError, PAGE_SIZE, uvmLoan, uvmUnloanPages } from '@loanout/core';
import { mbufStats } from '@loanout/mbuf';
import { startPageMap } from '@loanout/pagemap';
import { sockConnect } from '@loanout/sockets';

async function main(): Promise<void> {
  const kernel = new Kernel({ physPages: 1024 });
  const proc = kernel.createProcess();
  const va = proc.mmap(4 * PAGE_SIZE);
  await proc.write(va, Buffer.alloc(4 * PAGE_SIZE, 'hello, loan '));

  // a loan: the kernel borrows the pages (A->K), read-only, and gives them back
  const pages = await uvmLoan(proc.map, va, 4 * PAGE_SIZE, 'kernel');
  const lent = pages[0].bytes().subarray(0, 11).toString();
  uvmUnloanPages(pages);

  // a send by loan to a TCP server of our own
  let received = 0;
  const server = createServer((s) => s.on('data', (d: Buffer) => (received += d.length)));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  const so = await sockConnect(kernel, { host: '127.0.0.1', port });
  const sent = await so.send(proc, va, 4 * PAGE_SIZE, { mode: 'loan' });
  await sent.done;
  await so.close();

  // the live page map, serving its page from the installed package
  const map = await startPageMap(kernel, { title: 'try-loanout' });
  const page = await fetch(map.url);
  const html = await page.text();
  await map.close();

  // errors are KernelErrors, whichever package throws them
  const refused = await sockConnect(kernel, { port: -1 }).catch((err: unknown) => err);
  proc.exit();
  await new Promise((r) => server.close(r));
  kernel.checkInvariants();

  const ok =
    lent === 'hello, loan' &&
    sent.loanedBytes === 4 * PAGE_SIZE &&
    received === 4 * PAGE_SIZE &&
    mbufStats(kernel).loanedBytes === 4 * PAGE_SIZE &&
    page.status === 200 &&
    html.includes('live page map') &&
    refused instanceof KernelError &&
    refused.code === 'EINVAL';
  console.log(
    `${ok ? 'ok' : 'FAILED'}: loaned "${lent}", sent ${sent.loanedBytes} bytes by loan, page map ${page.status}`,
  );
  process.exitCode = ok ? 0 : 1;
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
