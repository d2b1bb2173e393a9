// try-loanout.cjs: the packages from plain JavaScript, as CommonJS (require; Node >= 20.19).
const { createServer } = require('node:net');
const { Kernel, KernelError, PAGE_SIZE, uvmLoan, uvmUnloanPages } = require('@loanout/core');
const { mbufStats } = require('@loanout/mbuf');
const { startPageMap } = require('@loanout/pagemap');
const { sockConnect } = require('@loanout/sockets');

async function main() {
  const kernel = new Kernel({ physPages: 1024 });
  const proc = kernel.createProcess();
  const va = proc.mmap(4 * PAGE_SIZE);
  await proc.write(va, Buffer.alloc(4 * PAGE_SIZE, 'hello, loan '));

  const pages = await uvmLoan(proc.map, va, 4 * PAGE_SIZE, 'kernel');
  const lent = pages[0].bytes().subarray(0, 11).toString();
  uvmUnloanPages(pages);

  let received = 0;
  const server = createServer((s) => s.on('data', (d) => (received += d.length)));
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const so = await sockConnect(kernel, { host: '127.0.0.1', port: server.address().port });
  const sent = await so.send(proc, va, 4 * PAGE_SIZE, { mode: 'loan' });
  await sent.done;
  await so.close();

  const map = await startPageMap(kernel, { title: 'try-loanout' });
  const page = await fetch(map.url);
  const html = await page.text();
  await map.close();

  const refused = await sockConnect(kernel, { port: -1 }).catch((err) => err);
  proc.exit();
  await new Promise((r) => server.close(r));
  kernel.checkInvariants();

  // require() and import() hand out the same module: one Kernel class, whichever way it is reached
  const oneCopy = (await import('@loanout/core')).Kernel === Kernel;
  const ok =
    lent === 'hello, loan' &&
    sent.loanedBytes === 4 * PAGE_SIZE &&
    received === 4 * PAGE_SIZE &&
    mbufStats(kernel).loanedBytes === 4 * PAGE_SIZE &&
    page.status === 200 &&
    html.includes('live page map') &&
    refused instanceof KernelError &&
    refused.code === 'EINVAL' &&
    oneCopy;
  console.log(
    `${ok ? 'ok' : 'FAILED'}: loaned "${lent}", sent ${sent.loanedBytes} bytes by loan, page map ${page.status}, one copy: ${oneCopy}`,
  );
  process.exitCode = ok ? 0 : 1;
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
