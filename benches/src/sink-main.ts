/*
 * sink-main.ts: `pnpm sink [--host HOST] [--port N]` -- the far side of the network suites, alone.
 *
 * Run it on the other machine, then `pnpm bench --peer THAT_HOST:N` here. It listens on 127.0.0.1
 * unless told otherwise, and when told otherwise it says so loudly: an echo and discard service open
 * to a network is something to know about. Ctrl-C (or SIGTERM) closes it and exits 0.
 *
 * The bench also forks this file for its own loopback runs (`--port 0`, with an IPC channel): it then
 * reports its control port over IPC instead of printing, and exits when the bench closes it or goes
 * away (children.ts).
 */
import { serveChild } from './children.js';
import { isLoopback, parseSink, SINK_USAGE, UsageError, usageExit } from './cli.js';
import { MAX_CONTROL_PORT, SERVICES, type Sink, startSink } from './sink.js';

/* banner: what listens where, and how to use it (stdout) */
function banner(sink: Sink): string {
  const rows = [
    `  ${sink.port}  control   (one JSON request per line: hello, stats, settle)`,
    ...SERVICES.map((s) => `  ${sink.ports[s.name]}  ${s.name.padEnd(9)} ${s.what}`),
  ];
  const where = isLoopback(sink.host) ? `${sink.host} (loopback: this machine only)` : sink.host;
  return [
    `loanout sink listening on ${where}`,
    ...rows,
    `run the bench against it:  pnpm bench --peer <this host>:${sink.port}   (Ctrl-C stops the sink)`,
    '',
  ].join('\n');
}

/* warning: said on stderr when the sink listens beyond loopback */
function warning(sink: Sink): string {
  const ports = [sink.port, ...Object.values(sink.ports)];
  const range =
    ports[1] === sink.port + 1 ? `${sink.port}-${sink.port + ports.length - 1}` : ports.join(', ');
  const line = '!'.repeat(78);
  return [
    line,
    `!! sink: NOT LOOPBACK -- listening on ${sink.host}, ports ${range} (tcp)`,
    '!! any host that can reach these ports can send to this sink and through its echo servers.',
    '!! Open them to the bench host only, and stop the sink (Ctrl-C) when you are done.',
    line,
    '',
  ].join('\n');
}

async function standalone(host: string, port: number): Promise<void> {
  const sink = await startSink(host, port);
  if (!isLoopback(host)) process.stderr.write(warning(sink));
  process.stdout.write(banner(sink));
  const stop = () => {
    void sink.close().then(() => {
      process.stdout.write('sink: closed\n');
      process.exit(0);
    });
    setTimeout(() => process.exit(0), 3_000).unref();
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}

async function main(): Promise<void> {
  const cmd = parseSink(process.argv.slice(2), MAX_CONTROL_PORT);
  if (cmd.kind === 'help') {
    process.stdout.write(SINK_USAGE);
    return;
  }
  if (process.send === undefined) return standalone(cmd.host, cmd.port);
  await serveChild(async () => {
    const sink = await startSink(cmd.host, cmd.port);
    return { ready: { port: sink.port }, close: () => sink.close() };
  });
}

main().catch((err: unknown) => {
  if (err instanceof UsageError) usageExit(err, SINK_USAGE);
  process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
