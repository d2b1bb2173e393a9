/*
 * children.ts: the benchmark's child processes (the sink of each network suite) -- starting them,
 * stopping them, and making sure none outlives the run.
 *
 * A child is forked with the parent's node flags (so it runs TypeScript through tsx and imports the
 * workspace packages from source, like the parent) and an IPC channel. It says `ready` (with its
 * port) once listening, and on `close` shuts its servers and exits; everything else goes over TCP
 * (sink-client.ts). It also exits by itself when the channel drops, i.e. when the parent dies.
 *
 * The parent side keeps every live child in one set: `closeChild` asks politely and then kills after
 * a timeout, and an exit hook kills whatever is left (SIGKILL, by pid) however the parent ends --
 * normally, on an error, or on Ctrl-C. Nothing is found by name and nothing else is touched.
 */
import { type ChildProcess, fork } from 'node:child_process';

interface Reply {
  type: string;
  [k: string]: unknown;
}

export interface Child {
  readonly name: string;
  readonly proc: ChildProcess;
  /* what the child said when ready (its ports) */
  readonly ready: Reply;
}

const live = new Set<ChildProcess>();
let hooked = false;

/* killAll: SIGKILL every child still alive (the exit hook; safe to call twice) */
export function killAll(): void {
  for (const p of live) {
    if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
  }
  live.clear();
}

function hookExit(): void {
  if (hooked) return;
  hooked = true;
  process.on('exit', killAll);
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.once(sig, () => {
      killAll();
      process.exit(130);
    });
  }
}

/*
 * startChild: fork a child script and wait for it to say it is ready.
 * => argv passed to the child; resolves with the child and its ready message
 * => throws if the child exits or doesn't get ready within timeoutMs (it is killed)
 */
export async function startChild(
  name: string,
  script: URL,
  argv: string[],
  timeoutMs = 30_000,
): Promise<Child> {
  hookExit();
  const proc = fork(script, argv, { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  /* a send on a closed channel is reported to the sender's callback; nothing else may throw here */
  proc.on('error', () => undefined);
  live.add(proc);
  proc.once('exit', () => live.delete(proc));
  try {
    const ready = await waitFor(proc, (m) => m.type === 'ready', timeoutMs, `${name}: not ready`);
    return { name, proc, ready };
  } catch (err) {
    proc.kill('SIGKILL');
    throw err;
  }
}

/*
 * closeChild: ask a child to close and wait for it to exit; kill it if it takes over timeoutMs.
 * => never throws; resolves once the child is gone
 */
export async function closeChild(child: Child, timeoutMs = 5_000): Promise<void> {
  const p = child.proc;
  if (p.exitCode !== null || p.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => p.once('exit', () => resolve()));
  if (p.connected) p.send({ type: 'close' }, (err) => err && p.kill('SIGKILL'));
  const timer = setTimeout(() => p.kill('SIGKILL'), timeoutMs);
  await exited;
  clearTimeout(timer);
}

function waitFor(
  proc: ChildProcess,
  match: (m: Reply) => boolean,
  timeoutMs: number,
  what: string,
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const done = (err: Error | null, m?: Reply) => {
      clearTimeout(timer);
      proc.off('message', onMessage);
      proc.off('exit', onExit);
      if (err !== null) reject(err);
      else resolve(m!);
    };
    const onMessage = (m: Reply) => {
      if (m !== null && typeof m === 'object' && match(m)) done(null, m);
    };
    const onExit = (code: number | null, sig: string | null) =>
      done(new Error(`${what} (exited with ${code ?? sig})`));
    const timer = setTimeout(() => done(new Error(`${what} within ${timeoutMs} ms`)), timeoutMs);
    proc.on('message', onMessage);
    proc.once('exit', onExit);
  });
}

export interface ChildService {
  /* sent with the ready message (ports) */
  ready: Record<string, unknown>;
  /* closes the servers */
  close: () => Promise<void>;
}

/*
 * serveChild: the child side -- start the service, report ready, exit on close or when the parent
 * goes away.
 * => for use as the body of a child script; exits the process with 1 on any error
 */
export async function serveChild(start: () => Promise<ChildService>): Promise<void> {
  if (process.send === undefined)
    throw new Error('serveChild: not started by the benchmark (no IPC channel)');
  const die = (err: unknown) => {
    console.error(err);
    process.exit(1);
  };
  process.on('disconnect', () => process.exit(0));
  try {
    const svc = await start();
    process.on('message', (m: Reply) => {
      if (m.type !== 'close') return;
      const bye = setTimeout(() => process.exit(0), 2_000);
      bye.unref();
      void svc.close().then(() => process.exit(0), die);
    });
    process.send({ type: 'ready', ...svc.ready });
  } catch (err) {
    die(err);
  }
}
