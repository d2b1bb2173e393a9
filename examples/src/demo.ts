/*
 * demo.ts: a two-minute tour of page loanout in the toy kernel.
 *
 * A process writes a message into its memory, the kernel borrows the page (A->K loan: wired, every
 * mapping read-only), the process writes again -- which faults and breaks the loan -- and the
 * kernel's borrowed page still holds the original bytes. Run: pnpm demo
 */
import { Kernel, PAGE_SIZE, Prot, uvmLoan, uvmUnloanPages } from '@loanout/core';

const k = new Kernel({ physPages: 256 });
const p = k.createProcess();
const va = p.mmap(PAGE_SIZE, { prot: Prot.READ | Prot.WRITE });

await p.write(va, Buffer.from('original bytes'));
const [page] = await uvmLoan(p.map, va, PAGE_SIZE, 'kernel');
console.log(`loaned frame ${page.frame}: loanCount=${page.loanCount} wireCount=${page.wireCount}`);

await p.write(va, Buffer.from('NEW BYTES!!!!!'));
console.log(`user now reads:        "${(await p.read(va, 14)).toString()}"`);
console.log(`kernel's loan still:   "${page.bytes().subarray(0, 14).toString()}"`);

uvmUnloanPages([page]);
p.exit();
k.checkInvariants();
const s = k.stats();
console.log(
  `loans=${s.loans} loanBreaks=${s.loanBreaks} orphansFreed=${s.orphansFreed} freePages=${s.freePages}/${s.physPages}`,
);
