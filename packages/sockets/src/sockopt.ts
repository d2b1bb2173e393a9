/*
 * sockopt.ts: the options a socket, a listener or an echo server is made with -- checked once, up
 * front, before anything is taken (no port bound, no connection made, no kernel memory allocated),
 * and filled in with their defaults. NetBSD's sosetopt refuses an SO_SNDBUF / SO_RCVBUF below 1
 * with EINVAL (and an SO_LINGER beyond what a timer can count with EDOM), sbreserve one beyond sb_max;
 * here a size that could never be had is EINVAL too, and one that could be had but is not free now
 * is ENOMEM when the socket is made.
 *
 * The checked values are a snapshot: a listener applies them to every connection it accepts, so
 * changing the caller's object afterwards changes nothing.
 */
import { KernelError, option, PAGE_SIZE } from '@loanout/core';
import type { SocketOptions } from './uipc_socket.js';
import type { ConnectOptions, ListenOptions } from './uipc_syscalls.js';

/** the default send high-water mark: 1 MiB */
export const DEFAULT_HIWAT = 1 << 20;
/** the default receive chunk: 32 KiB */
export const RECV_CHUNK = 32 * 1024;
/** the default number of receive chunks */
export const RECV_CHUNKS = 4;
/** the longest linger a timer can wait: Node cuts a longer timeout to 1 ms */
export const MAX_LINGER_MS = 2 ** 31 - 1;

/** SocketOptions with every default filled in */
export interface SocketConfig {
  /** SocketOptions.sendHighWater */
  sendHighWater: number;
  /** SocketOptions.recvChunkBytes */
  recvChunkBytes: number;
  /** SocketOptions.recvChunks */
  recvChunks: number;
  /** SocketOptions.autoThreshold (undefined: measured) */
  autoThreshold: number | undefined;
}

/** ConnectOptions, checked, with every default filled in */
export interface ConnectConfig extends SocketConfig {
  /** where to connect */
  host: string;
  /** the port */
  port: number;
}

/** ListenOptions, checked, with every default filled in */
export interface ListenConfig extends SocketConfig {
  /** where to listen */
  host: string;
  /** the port (0: any) */
  port: number;
  /** connections open at once, at most */
  maxConnections: number;
}

/**
 * checkOptions: is the options argument of fn an object?
 * => undefined is fine unless `required`; throws EINVAL for null, strings, numbers, ...
 */
export function checkOptions(fn: string, opts: unknown, required = false): void {
  if (opts === undefined && !required) return;
  if (opts === null || typeof opts !== 'object') {
    throw new KernelError('EINVAL', `${fn}: options must be an object${required ? '' : ' or undefined'}`);
  }
}

/** checkInteger: EINVAL naming fn and `what` unless v is a safe integer in [min, max] */
export function checkInteger(
  fn: string,
  what: string,
  v: unknown,
  min: number,
  max = Number.MAX_SAFE_INTEGER,
): asserts v is number {
  if (!Number.isSafeInteger(v) || (v as number) < min || (v as number) > max) {
    throw new KernelError('EINVAL', `${fn}: bad ${what} ${String(v)}`);
  }
}

/**
 * checkRecvArea: could a receive area of `chunks` chunks of chunkBytes ever be had in a kernel of
 * physPages pages?
 * => chunkBytes a page multiple, chunks >= 2, the whole area no larger than the kernel's RAM;
 *    throws EINVAL naming fn otherwise
 */
export function checkRecvArea(fn: string, chunkBytes: unknown, chunks: unknown, physPages: number): void {
  const bytes = chunkBytes as number;
  if (!Number.isSafeInteger(bytes) || bytes < PAGE_SIZE || bytes % PAGE_SIZE !== 0) {
    throw new KernelError('EINVAL', `${fn}: receive chunk of ${String(bytes)} bytes is not a page multiple`);
  }
  checkInteger(fn, 'receive chunk count', chunks, 2);
  if (bytes * chunks > physPages * PAGE_SIZE) {
    throw new KernelError(
      'EINVAL',
      `${fn}: a receive area of ${chunks} x ${bytes} bytes is larger than the kernel's ${physPages * PAGE_SIZE} bytes of RAM`,
    );
  }
}

function checkHostPort(fn: string, host: unknown, port: unknown, allowZero: boolean): void {
  if (typeof host !== 'string' || host === '')
    throw new KernelError('EINVAL', `${fn}: bad host ${String(host)}`);
  checkInteger(fn, 'port', port, allowZero ? 0 : 1, 65535);
}

/**
 * socketConfig: fn's socket options, checked for a kernel of physPages pages, defaults filled in
 * => sendHighWater >= 1, autoThreshold >= 0 (integers), receive area as checkRecvArea; else EINVAL
 */
export function socketConfig(fn: string, opts: SocketOptions, physPages: number): SocketConfig {
  const cfg: SocketConfig = {
    sendHighWater: option(opts.sendHighWater, DEFAULT_HIWAT),
    recvChunkBytes: option(opts.recvChunkBytes, RECV_CHUNK),
    recvChunks: option(opts.recvChunks, RECV_CHUNKS),
    autoThreshold: opts.autoThreshold,
  };
  checkInteger(fn, 'sendHighWater', cfg.sendHighWater, 1);
  if (cfg.autoThreshold !== undefined) checkInteger(fn, 'autoThreshold', cfg.autoThreshold, 0);
  checkRecvArea(fn, cfg.recvChunkBytes, cfg.recvChunks, physPages);
  return cfg;
}

/**
 * connectConfig: sockConnect's options (an object with a port), checked, defaults filled in
 * => throws EINVAL naming fn
 */
export function connectConfig(fn: string, opts: ConnectOptions, physPages: number): ConnectConfig {
  checkOptions(fn, opts, true);
  const o = snapshot(opts);
  const host = option(o.host, '127.0.0.1');
  checkHostPort(fn, host, o.port, false);
  return { ...socketConfig(fn, o, physPages), host, port: o.port };
}

/**
 * snapshot: the options object's own fields, each read once -- what is checked is what is used, even
 * if a getter would answer differently the second time (or the caller changes the object meanwhile)
 */
export function snapshot<T extends object>(opts: T): T {
  return { ...opts };
}

/**
 * listenConfig: a listener's options (an object, or undefined for all defaults), checked, defaults
 * filled in (port and maxConnections from `defaults`)
 * => maxConnections a positive integer; throws EINVAL naming fn
 */
export function listenConfig(
  fn: string,
  opts: ListenOptions | undefined,
  physPages: number,
  defaults: { port: number; maxConnections: number },
): ListenConfig {
  checkOptions(fn, opts);
  const o = snapshot(opts ?? {});
  const host = option(o.host, '127.0.0.1');
  const port = option(o.port, defaults.port);
  checkHostPort(fn, host, port, true);
  const maxConnections = option(o.maxConnections, defaults.maxConnections);
  checkInteger(fn, 'maxConnections', maxConnections, 1);
  return { ...socketConfig(fn, o, physPages), host, port, maxConnections };
}
