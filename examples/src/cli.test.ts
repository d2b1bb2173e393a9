/*
 * The examples' command lines, run as the README runs them (node with tsx and the source condition,
 * in a child process; one test through pnpm itself): every command answers --help with its usage
 * (exit 0) and a usage error with one line and the usage (exit 2, no stack trace); Ctrl-C after a
 * report exits 0 with no word from pnpm; `pnpm demo` tours the loans; `pnpm cow --ui` waits for a
 * viewer, walks its steps and keeps the page up until Ctrl-C; `pnpm echo --ui` serves the page map and
 * reports both directions on Ctrl-C; `pnpm sendfile --ui --once` serves one connection and exits by
 * itself; the reports say what they count (loan breaks beside COW faults, colours only with --ui,
 * aligned columns).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { COW } from './cow.js';
import { DEMO } from './demo.js';
import { ECHO_CLIENT, MAX_ECHO_BYTES } from './echo-client.js';
import { ECHO } from './echo-server.js';
import { SENDFILE } from './sendfile.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const children: ChildProcess[] = [];
let dir: string | null = null;

afterEach(async () => {
  for (const c of children.splice(0)) if (c.exitCode === null) c.kill('SIGKILL');
  if (dir !== null) await rm(dir, { recursive: true, force: true });
  dir = null;
});

/* example: run examples/src/<script> with args; `out` collects its stdout */
function example(script: string, args: string[]) {
  const child = spawn(
    process.execPath,
    ['--conditions=@loanout/source', '--import', 'tsx', `examples/src/${script}`, ...args],
    { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  children.push(child);
  const run = { child, out: '' };
  child.stdout!.setEncoding('utf8').on('data', (d: string) => {
    run.out += d;
  });
  child.stderr!.setEncoding('utf8').on('data', (d: string) => {
    run.out += d;
  });
  return run;
}

/* until: wait (bounded) for the output to match */
async function until(run: { out: string }, re: RegExp, ms = 20_000): Promise<RegExpMatchArray> {
  for (const end = Date.now() + ms; Date.now() < end; await new Promise((r) => setTimeout(r, 25))) {
    const m = run.out.match(re);
    if (m !== null) return m;
  }
  throw new Error(`no ${re} in:\n${run.out}`);
}

/* command: run examples/src/<script> to its end (bounded by the test); its exit code, stdout, stderr */
async function command(
  script: string,
  args: string[],
): Promise<{ code: number | null; out: string; err: string }> {
  const child = spawn(
    process.execPath,
    ['--conditions=@loanout/source', '--import', 'tsx', `examples/src/${script}`, ...args],
    { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  children.push(child);
  let out = '';
  let err = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => {
    out += d;
  });
  child.stderr!.setEncoding('utf8').on('data', (d: string) => {
    err += d;
  });
  const code = await new Promise<number | null>((resolve) => child.once('close', (c) => resolve(c)));
  return { code, out, err };
}

/* the page map's colour words: only --ui may use them */
const COLOURS = /\b(red|blue|green|yellow|purple|black|grey|gr[ae]y|colou?rs?)\b/i;

function exited(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((resolve) => child.once('exit', (code) => resolve(code)));
}

/* view: open the page map's event stream, as a browser would; returns its legend's title and about */
function view(url: string): Promise<{ title: string; about: string; req: http.ClientRequest }> {
  return new Promise((resolve, reject) => {
    const req = http.get(`${url}events`, (res) => {
      let buf = '';
      res.setEncoding('utf8').on('data', (d: string) => {
        buf += d;
        const m = buf.match(/event: legend\ndata: (.*)\n/);
        if (m !== null) {
          const legend = JSON.parse(m[1]);
          resolve({ title: legend.title, about: legend.about, req });
        }
      });
    });
    req.on('error', reject);
  });
}

const COMMANDS = [
  ['demo.ts', DEMO],
  ['echo-server.ts', ECHO],
  ['echo-client.ts', ECHO_CLIENT],
  ['sendfile.ts', SENDFILE],
  ['cow.ts', COW],
] as const;

/* a usage error: nothing on stdout; on stderr one line saying what is wrong, a blank line, the usage */
function expectUsageError(r: { code: number | null; out: string; err: string }, name: string, what: RegExp) {
  expect(r.code).toBe(2);
  expect(r.out).toBe('');
  const [first, blank, usage] = r.err.split('\n');
  expect(first).toMatch(new RegExp(`^${name}: `));
  expect(first).toMatch(what);
  expect(blank).toBe('');
  expect(usage).toMatch(new RegExp(`^usage: ${name}`));
  expect(r.err).not.toMatch(/^\s+at /m);
}

describe('every command says how to use it', () => {
  it.each(COMMANDS)('%s --help prints its usage and every flag, exit 0', async (script, cmd) => {
    const r = await command(script, ['--help']);
    expect(r).toMatchObject({ code: 0, err: '' });
    expect(r.out.startsWith(`usage: ${cmd.name} `)).toBe(true);
    for (const [name, flag] of Object.entries(cmd.flags))
      expect(r.out).toContain(flag.type === 'string' ? `--${name} ${flag.value}` : `--${name}`);
    expect(r.out).toContain('-h, --help');
    expect(r.out).toContain('exit status: 0 done, 1 failed, 2 usage error');
  });

  it.each(COMMANDS)('%s says what is wrong in one line, then its usage, exit 2', async (script, cmd) => {
    const file = script === 'sendfile.ts' ? [ROOT] : [];
    const stringFlag = Object.entries(cmd.flags).find(([, f]) => f.type === 'string')![0];
    const [unknown, noValue, badValue, doubleDash] = await Promise.all([
      command(script, [...file, '--bogus']),
      command(script, [...file, `--${stringFlag}`]),
      command(script, [...file, `--${stringFlag}`, 'x1']),
      command(script, ['--', ...file, '--nope']),
    ]);
    expectUsageError(unknown, cmd.name, /unknown flag --bogus$/);
    expectUsageError(noValue, cmd.name, new RegExp(`--${stringFlag} needs a value`));
    expectUsageError(badValue, cmd.name, new RegExp(`bad --${stringFlag} x1: `));
    expectUsageError(doubleDash, cmd.name, /unknown flag --nope$/);
  });

  it('pnpm sendfile without its file, or with two, is a usage error', async () => {
    const [none, two] = await Promise.all([command('sendfile.ts', []), command('sendfile.ts', ['a', 'b'])]);
    expectUsageError(none, 'pnpm sendfile', /missing <file>$/);
    expectUsageError(two, 'pnpm sendfile', /unexpected argument b$/);
  });

  it('pnpm echo:client states its largest --bytes in the usage and in the error, before sending anything', async () => {
    const [help, tooBig, tooMany, ui] = await Promise.all([
      command('echo-client.ts', ['--help']),
      command('echo-client.ts', ['--bytes', String(MAX_ECHO_BYTES + 1), '--port', '1']),
      command('echo-client.ts', ['--bytes', '300000000', '--clients', '2', '--port', '1']),
      command('echo-server.ts', ['--ui=yes']),
    ]);
    expect(help.out).toContain(`--bytes is at most ${MAX_ECHO_BYTES}`);
    expect(help.out).toContain(`1..${MAX_ECHO_BYTES}`);
    expectUsageError(tooBig, 'pnpm echo:client', new RegExp(`from 1 to ${MAX_ECHO_BYTES}: .*at most 1 GiB`));
    expectUsageError(tooMany, 'pnpm echo:client', /2 clients of 300000000 bytes need .* more than the 1 GiB/);
    expectUsageError(ui, 'pnpm echo', /--ui takes no value$/);
  });

  it('pnpm echo:client with no server: one line, exit 1, asking whether the server runs', async () => {
    const port = await new Promise<number>((resolve) => {
      const srv = net.createServer().listen(0, '127.0.0.1', () => {
        const p = (srv.address() as net.AddressInfo).port;
        srv.close(() => resolve(p));
      });
    });
    const r = await command('echo-client.ts', ['--port', String(port), '--bytes', '4096']);
    expect(r.code).toBe(1);
    expect(r.err.trim().split('\n')).toHaveLength(1);
    expect(r.err).toMatch(
      new RegExp(`ECONNREFUSED.*is the echo server running on 127\\.0\\.0\\.1:${port}\\?`),
    );
  });
});

describe('the examples from the command line', () => {
  it('Ctrl-C of a real `pnpm echo` (to its whole process group, as a terminal sends it) reports both directions and exits 0, no pnpm noise', async () => {
    const pnpm = process.env.npm_execpath?.includes('pnpm')
      ? [process.execPath, process.env.npm_execpath]
      : ['pnpm'];
    const child = spawn(pnpm[0], [...pnpm.slice(1), 'echo', '--port', '0'], {
      cwd: ROOT,
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    children.push(child);
    const run = { child, out: '' };
    child.stdout!.setEncoding('utf8').on('data', (d: string) => {
      run.out += d;
    });
    child.stderr!.setEncoding('utf8').on('data', (d: string) => {
      run.out += d;
    });
    const [, port] = await until(run, /echo server on 127\.0\.0\.1:(\d+)/);
    const data = Buffer.alloc(1 << 20, 7);
    const echoed = await new Promise<number>((resolve, reject) => {
      let got = 0;
      const s = net.connect(Number(port), '127.0.0.1', () => s.end(data));
      s.on('data', (d: Buffer) => {
        got += d.length;
      });
      s.on('end', () => resolve(got)).on('error', reject);
    });
    expect(echoed).toBe(1 << 20);
    process.kill(-child.pid!, 'SIGINT');
    expect(await exited(child)).toBe(0);
    expect(run.out).toMatch(/connections 1, echoed 1\.0 MiB:/);
    expect(run.out).toMatch(/^ {2}received by copy +1048576 bytes \(1\.0 MiB\)$/m);
    expect(run.out).toMatch(/^ {2}received by transfer +0 bytes$/m);
    expect(run.out).toMatch(/^ {2}sent by copy +0 bytes$/m);
    expect(run.out).toMatch(/^ {2}sent by loan +1048576 bytes \(1\.0 MiB\) in \d+ chains$/m);
    expect(run.out).toMatch(
      /loan breaks 0 \(writes to a page on loan, which got a copy\), copy-on-write faults 0/,
    );
    expect(run.out).not.toMatch(/ELIFECYCLE|Command failed/);
  }, 40_000);

  it('pnpm echo --mode zerocopy echoes for python clients (lines as typed, and a 1 MiB blob) with 0 bytes copied either way', async () => {
    const run = example('echo-server.ts', ['--mode', 'zerocopy', '--port', '0']);
    const [, port] = await until(run, /echo server on 127\.0\.0\.1:(\d+), mode zerocopy/);
    const py = [
      'import socket, sys, time',
      'port = int(sys.argv[1])',
      '# an interactive client (as nc is): short lines, one at a time',
      's = socket.create_connection(("127.0.0.1", port))',
      'lines = [b"hello\\n", b"zero-copy\\n", b"bye\\n"]',
      'for l in lines:',
      '    s.sendall(l); time.sleep(0.05)',
      's.shutdown(socket.SHUT_WR)',
      'got = b"".join(iter(lambda: s.recv(65536), b""))',
      'assert got == b"".join(lines), got',
      '# a bulk client',
      's = socket.create_connection(("127.0.0.1", port))',
      'data = bytes((i * 7) % 251 for i in range(1 << 20))',
      's.sendall(data); s.shutdown(socket.SHUT_WR)',
      'got = b"".join(iter(lambda: s.recv(65536), b""))',
      'print("ok" if got == data else "MISMATCH", len(got))',
    ].join('\n');
    const client = await new Promise<{ out: string; code: number | null }>((resolve) => {
      const c = spawn('python3', ['-c', py, port]);
      let out = '';
      c.stdout.setEncoding('utf8').on('data', (d: string) => {
        out += d;
      });
      c.on('close', (code) => resolve({ out, code }));
    });
    expect(client).toEqual({ out: `ok ${1 << 20}\n`, code: 0 });
    run.child.kill('SIGINT');
    expect(await exited(run.child)).toBe(0);
    const total = (1 << 20) + 'hello\nzero-copy\nbye\n'.length;
    expect(run.out).toMatch(/^ {2}received by copy +0 bytes$/m);
    expect(run.out).toMatch(new RegExp(`^ {2}received by transfer +${total} bytes`, 'm'));
    expect(run.out).toMatch(/^ {2}sent by copy +0 bytes$/m);
    expect(run.out).toMatch(new RegExp(`^ {2}sent by loan +${total} bytes`, 'm'));
    /* the partly filled pages that moved in: zeroed after the bytes, and said so */
    expect(run.out).toMatch(/^ {2}pages that came in partly filled were zeroed after the bytes: \d+ bytes$/m);
  }, 40_000);

  it('pnpm cow shows loan breaks beside COW faults, says what each counts, in aligned columns, and names no colour', async () => {
    const r = await command('cow.ts', ['--pages', '1200']);
    expect(r).toMatchObject({ code: 0, err: '' });
    expect(r.out).not.toMatch(COLOURS);
    const lines = r.out.split('\n');
    const head = lines.find((l) => l.includes('loaned pages'))!;
    const rows = ['before send', 'after the overwrite', 'after done'].map(
      (n) => lines.find((l) => l.startsWith(n))!,
    );
    /* every number ends where its column's heading ends */
    const ends = ['loaned pages', 'loan breaks', 'cow faults', 'orphans freed'].map(
      (h) => head.indexOf(h) + h.length,
    );
    const cells = rows.map((row) => ends.map((end) => Number(row.slice(0, end).split(' ').at(-1))));
    for (const row of rows) expect(row.length).toBe(head.length);
    for (const cellRow of cells) for (const c of cellRow) expect(Number.isInteger(c)).toBe(true);
    expect(cells).toEqual([
      [0, 0, 0, 0],
      [1200, 1200, 0, 0],
      [0, 1200, 0, 1200],
    ]);
    expect(r.out).toMatch(/^loan breaks {4}writes to a page on loan: each gave the writer a copy/m);
    expect(r.out).toMatch(
      /^cow faults {5}copy-on-write faults proper: .*\n.*none here, since the buffer was lent, never shared/m,
    );
    expect(r.out).toMatch(/the original: the wire kept the old bytes/);
  }, 40_000);

  it('pnpm cow --ui waits for a viewer, walks its steps, and stays up until Ctrl-C', async () => {
    const run = example('cow.ts', ['--ui', '--pages', '64', '--step-ms', '20']);
    const [, url] = await until(run, /live page map: (http:\/\/127\.0\.0\.1:\d+\/)/);
    await new Promise((r) => setTimeout(r, 300));
    expect(run.out).not.toMatch(/the sender has written/);
    const viewer = await view(url);
    expect(viewer.title).toBe('pnpm cow');
    await until(run, /the page map stays up/);
    /* how many loans the overwrite breaks depends on how much the host's socket buffers took first */
    expect(run.out).toMatch(/sent by loan .*: \d+ pages are on loan/);
    expect(run.out).toMatch(/\d+ writes faulted and broke a loan/);
    expect(run.out).toMatch(/the peer read everything/);
    expect(run.out).toMatch(/the original: the wire kept the old bytes/);
    /* with the page map, the steps name its colours */
    expect(run.out).toMatch(/on loan to the kernel \(red\)/);
    expect(run.out).toMatch(/orphans \(purple\)/);
    viewer.req.destroy();
    run.child.kill('SIGINT');
    expect(await exited(run.child)).toBe(0);
  }, 40_000);

  it('pnpm demo tours every kind of loan and ends with every page free', async () => {
    const run = example('demo.ts', []);
    expect(await exited(run.child)).toBe(0);
    for (const kind of ['A->K', 'O->K', 'O->A', 'zero page']) expect(run.out).toContain(kind);
    expect(run.out).toMatch(/free pages 256\/256/);
    /* without --ui there is no page map, so no colours */
    expect(run.out).toContain('now belongs to no one: an orphan');
    expect(run.out).not.toMatch(COLOURS);
  }, 40_000);

  it('pnpm echo --ui serves the page map and reports what it did on Ctrl-C', async () => {
    const run = example('echo-server.ts', ['--ui', '--port', '0']);
    const [, port] = await until(run, /echo server on 127\.0\.0\.1:(\d+)/);
    const [, url] = await until(run, /live page map: (http:\/\/127\.0\.0\.1:\d+\/)/);
    const viewer = await view(url);
    expect(viewer.title).toBe('pnpm echo');
    /* the page says what runs, and how to drive it */
    expect(viewer.about).toBe(
      `an echo server, mode loan: bytes come in by copy and go back by loan (watch frames turn red while ` +
        `they are on the wire). Send it something: pnpm echo:client --port ${port}`,
    );
    viewer.req.destroy();
    const echoed = await new Promise<string>((resolve, reject) => {
      const s = net.connect(Number(port), '127.0.0.1', () => s.end('hello, loan'));
      let got = '';
      s.setEncoding('utf8').on('data', (d: string) => {
        got += d;
      });
      s.on('end', () => resolve(got)).on('error', reject);
    });
    expect(echoed).toBe('hello, loan');
    run.child.kill('SIGINT');
    expect(await exited(run.child)).toBe(0);
    expect(run.out).toMatch(/connections 1, echoed/);
    expect(run.out).toMatch(/^ {2}received by copy +11 bytes$/m);
  }, 40_000);

  it('pnpm sendfile --ui --once serves one connection, then exits by itself', async () => {
    dir = await mkdtemp(join(tmpdir(), 'loanout-cli-'));
    const file = join(dir, 'f.bin');
    await writeFile(file, Buffer.alloc(3 * 4096 + 7, 0x42));
    const run = example('sendfile.ts', [file, '--port', '0', '--ui', '--once']);
    const [, port] = await until(run, /serving .* on 127\.0\.0\.1:(\d+)/);
    const [, url] = await until(run, /live page map: (http:\/\/127\.0\.0\.1:\d+\/)/);
    const viewer = await view(url);
    expect(viewer.about).toBe(
      `serving ${file} on port ${port} by page loan (O->K): fetch it with nc 127.0.0.1 ${port} > copy, ` +
        "and watch the file's pages [green] go on loan [red]",
    );
    viewer.req.destroy();
    const got = await new Promise<Buffer>((resolve, reject) => {
      const parts: Buffer[] = [];
      const s = net.connect(Number(port), '127.0.0.1');
      s.on('data', (d: Buffer) => parts.push(d));
      s.on('end', () => resolve(Buffer.concat(parts))).on('error', reject);
    });
    expect(got.equals(Buffer.alloc(3 * 4096 + 7, 0x42))).toBe(true);
    expect(await exited(run.child)).toBe(0);
    expect(run.out).toMatch(/served 1 connection\(s\)/);
  }, 40_000);
});
