import { describe, expect, it } from 'vitest';
import { isLoopback, parseBench, parsePeer, parseSink, UsageError } from './cli.js';
import { makePlan, sendsPerOp } from './plan.js';
import { type BenchCase, caseName, orderRound } from './runner.js';
import { NET_SUITES, SUITE_NAMES } from './suites.js';

const run = (argv: string[]) => {
  const c = parseBench(argv);
  if (c.kind !== 'run') throw new Error(`not a run: ${c.kind}`);
  return c;
};

describe('parseBench', () => {
  it('defaults to the full run of every suite, on loopback, into benches/results', () => {
    expect(parseBench([])).toEqual({
      kind: 'run',
      quick: false,
      only: [...SUITE_NAMES],
      rounds: null,
      peer: null,
      out: null,
    });
  });

  it('takes --quick with or without the -- pnpm passes through', () => {
    expect(run(['--quick']).quick).toBe(true);
    expect(run(['--', '--quick']).quick).toBe(true);
  });

  it('takes --only, --rounds and --out, with = or a separate value; --only keeps the run order', () => {
    expect(run(['--only', 'echo,tcp']).only).toEqual(['tcp', 'echo']);
    expect(run(['--only=soak', '--rounds=7', '--out', '/tmp/x'])).toMatchObject({
      only: ['soak'],
      rounds: 7,
      out: '/tmp/x',
    });
  });

  it('with --peer runs the network suites only, and refuses an in-kernel one', () => {
    expect(run(['--peer', 'bench-b:9400'])).toMatchObject({
      peer: { host: 'bench-b', port: 9400 },
      only: [...NET_SUITES],
    });
    expect(run(['--peer', '10.0.0.2:9400', '--only', 'tcp']).only).toEqual(['tcp']);
    expect(() => parseBench(['--peer', '10.0.0.2:9400', '--only', 'tcp,soak'])).toThrow(/not soak/);
  });

  it('answers --help and -h anywhere, and takes --compare with two files and nothing else', () => {
    expect(parseBench(['--quick', '--help'])).toEqual({ kind: 'help' });
    expect(parseBench(['-h'])).toEqual({ kind: 'help' });
    expect(parseBench(['--compare', 'a.json', 'b.json'])).toEqual({
      kind: 'compare',
      a: 'a.json',
      b: 'b.json',
    });
    expect(() => parseBench(['--compare', 'a.json'])).toThrow(/needs 2 values/);
    expect(() => parseBench(['--compare', 'a.json', 'b.json', '--quick'])).toThrow(/no other flag/);
  });

  it('refuses what it does not know with a one-line UsageError', () => {
    const bad: [string[], RegExp][] = [
      [['--fast'], /unknown argument --fast/],
      [['quick'], /unknown argument quick/],
      [['--only', 'disk'], /unknown suite disk/],
      [['--only'], /--only needs a value/],
      [['--only', '--quick'], /--only needs a value/],
      [['--rounds', '0'], /--rounds must be 1\.\.50/],
      [['--rounds', '2.5'], /--rounds/],
      [['--quick=yes'], /--quick needs no value/],
      [['--peer', 'host'], /--peer wants HOST:PORT/],
      [['--out='], /--out needs a value/],
    ];
    for (const [argv, re] of bad) {
      let err: unknown = null;
      try {
        parseBench(argv);
      } catch (e) {
        err = e;
      }
      expect(err, argv.join(' ')).toBeInstanceOf(UsageError);
      expect((err as Error).message, argv.join(' ')).toMatch(re);
      expect((err as Error).message).not.toContain('\n');
    }
  });
});

describe('parsePeer, parseSink, isLoopback', () => {
  it('reads HOST:PORT and [IPv6]:PORT, ports 1..65535', () => {
    expect(parsePeer('127.0.0.1:9400')).toEqual({ host: '127.0.0.1', port: 9400 });
    expect(parsePeer('[::1]:9400')).toEqual({ host: '::1', port: 9400 });
    for (const bad of ['::1:9400', 'h:0', 'h:65536', 'h:', ':9400', 'h:94a'])
      expect(() => parsePeer(bad), bad).toThrow(UsageError);
  });

  it('sink: loopback on 9400 by default; --host, --port, port 0; the top port leaves room for the services', () => {
    expect(parseSink([], 65531)).toEqual({ kind: 'sink', host: '127.0.0.1', port: 9400 });
    expect(parseSink(['--host', '0.0.0.0', '--port=0'], 65531)).toEqual({
      kind: 'sink',
      host: '0.0.0.0',
      port: 0,
    });
    expect(parseSink(['--port', '65531'], 65531)).toMatchObject({ port: 65531 });
    expect(() => parseSink(['--port', '65532'], 65531)).toThrow(/--port must be 0\.\.65531/);
    expect(() => parseSink(['--port', '-1'], 65531)).toThrow(UsageError);
    expect(() => parseSink(['--host'], 65531)).toThrow(/--host needs a value/);
    expect(() => parseSink(['--peer', 'x:1'], 65531)).toThrow(/unknown argument/);
    expect(parseSink(['--help'], 65531)).toEqual({ kind: 'help' });
  });

  it('knows loopback from the rest', () => {
    for (const h of ['127.0.0.1', '127.1.2.3', '::1', 'localhost']) expect(isLoopback(h), h).toBe(true);
    for (const h of ['0.0.0.0', '::', '10.0.0.2', '192.168.1.5', 'bench-b'])
      expect(isLoopback(h), h).toBe(false);
  });
});

describe('plan', () => {
  it('quick has fewer sizes, rounds, samples and soak sends than full', () => {
    const q = makePlan(true);
    const f = makePlan(false);
    expect(q.sizes.length).toBeLessThan(f.sizes.length);
    expect(q.rounds).toBeLessThan(f.rounds);
    expect(q.cases.maxTime).toBeLessThan(f.cases.maxTime);
    expect(q.soakSends).toBe(100_000);
    expect(q.latencySizes.length).toBeLessThan(f.latencySizes.length);
    expect(f.latencySizes[0]).toBe(64);
    expect(f.latencySizes.at(-1)).toBe(65536);
    expect(f.soakSends).toBe(1_000_000);
    expect(f.sizes).toEqual([4096, 16384, 65536, 262144, 1048576]);
  });

  it('batches sends into operations of about the batch size', () => {
    expect(sendsPerOp(4096, 65536)).toBe(16);
    expect(sendsPerOp(1 << 20, 65536)).toBe(1);
    expect(sendsPerOp(3000, 65536)).toBe(22);
  });
});

describe('orderRound', () => {
  const c = (mode: BenchCase['mode'], size: number): BenchCase => ({
    suite: 'tcp',
    mode,
    size,
    perOp: 1,
    bytesPerSend: size,
    run: async () => undefined,
  });
  const cases = [c('copy', 1), c('loan', 1), c('raw', 1), c('copy', 2), c('loan', 2), c('raw', 2)];

  it('runs every mode of a size once per round, the order rotating between rounds', () => {
    const r0 = orderRound(cases, 0).map((x) => `${x.mode}${x.size}`);
    const r1 = orderRound(cases, 1).map((x) => `${x.mode}${x.size}`);
    expect(r0).toEqual(['copy1', 'loan1', 'raw1', 'copy2', 'loan2', 'raw2']);
    expect(r1).toEqual(['loan1', 'raw1', 'copy1', 'loan2', 'raw2', 'copy2']);
  });

  it('names cases by suite, mode and size', () => {
    expect(caseName({ suite: 'tcp', mode: 'loan', size: 65536 })).toBe('tcp loan 64 KiB');
    expect(caseName({ suite: 'loan-cost', mode: 'copy', size: 16 })).toBe('loan-cost copy 16p');
  });
});
