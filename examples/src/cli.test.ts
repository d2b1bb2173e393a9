/*
 * The examples' command lines, run as the README runs them (tsx with the source condition, in a child
 * process): `pnpm demo` tours the loans; `pnpm cow --ui` waits for a viewer, walks its steps and keeps
 * the page up until Ctrl-C; `pnpm echo --ui` serves the page map and reports on Ctrl-C; `pnpm sendfile
 * --ui --once` serves one connection and exits by itself.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';

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

function exited(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((resolve) => child.once('exit', (code) => resolve(code)));
}

/* view: open the page map's event stream, as a browser would; returns its legend's title */
function view(url: string): Promise<{ title: string; req: http.ClientRequest }> {
  return new Promise((resolve, reject) => {
    const req = http.get(`${url}events`, (res) => {
      let buf = '';
      res.setEncoding('utf8').on('data', (d: string) => {
        buf += d;
        const m = buf.match(/event: legend\ndata: (.*)\n/);
        if (m !== null) resolve({ title: JSON.parse(m[1]).title, req });
      });
    });
    req.on('error', reject);
  });
}

describe('the examples from the command line', () => {
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
    viewer.req.destroy();
    run.child.kill('SIGINT');
    expect(await exited(run.child)).toBe(0);
  }, 40_000);

  it('pnpm demo tours every kind of loan and ends with every page free', async () => {
    const run = example('demo.ts', []);
    expect(await exited(run.child)).toBe(0);
    for (const kind of ['A->K', 'O->K', 'O->A', 'zero page']) expect(run.out).toContain(kind);
    expect(run.out).toMatch(/free pages 256\/256/);
  }, 40_000);

  it('pnpm echo --ui serves the page map and reports what it did on Ctrl-C', async () => {
    const run = example('echo-server.ts', ['--ui', '--port', '0']);
    const [, port] = await until(run, /echo server on 127\.0\.0\.1:(\d+)/);
    const [, url] = await until(run, /live page map: (http:\/\/127\.0\.0\.1:\d+\/)/);
    const viewer = await view(url);
    expect(viewer.title).toBe('pnpm echo');
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
  }, 40_000);

  it('pnpm sendfile --ui --once serves one connection, then exits by itself', async () => {
    dir = await mkdtemp(join(tmpdir(), 'loanout-cli-'));
    const file = join(dir, 'f.bin');
    await writeFile(file, Buffer.alloc(3 * 4096 + 7, 0x42));
    const run = example('sendfile.ts', [file, '--port', '0', '--ui', '--once']);
    const [, port] = await until(run, /serving .* on 127\.0\.0\.1:(\d+)/);
    await until(run, /live page map: http:\/\/127\.0\.0\.1:\d+\//);
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
