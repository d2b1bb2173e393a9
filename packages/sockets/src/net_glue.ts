/*
 * net_glue.ts: everything that touches node:net's insides, in one place.
 *
 * The socket layer reads with Node's `onread` option (Node reads straight into our kernel memory)
 * and keeps half-open connections (allowHalfOpen), which only the net.Socket constructor accepts. A
 * connecting socket gets them from net.connect; an accepted one arrives already constructed, so we
 * take its libuv handle (the server runs with pauseOnConnect, so nothing has been read yet) and wrap
 * it in a new net.Socket. `_handle` is a private field of Node's: this file is the only user.
 */
import net from 'node:net';
import { KernelError, type KernelErrorCode } from '@loanout/core';

/** node:net's onread option: read from the host socket into buffers we hand it. */
export interface OnRead {
  /** the buffer to read into next */
  buffer: () => Buffer;
  /** nread bytes arrived in buf; false pauses reading */
  callback: (nread: number, buf: Buffer) => boolean;
}

/** connectTcp: open a TCP connection reading through onread; rejects with ECONNREFUSED etc. */
export function connectTcp(host: string, port: number, onread: OnRead): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const sock = net.connect({ host, port, onread, allowHalfOpen: true });
    const fail = (err: Error) => reject(kernelErrorFrom('sockConnect', err));
    sock.once('error', fail);
    sock.once('connect', () => {
      sock.off('error', fail);
      sock.setNoDelay(true);
      resolve(sock);
    });
  });
}

/** listenTcp: a paused-on-connect, half-open-capable server listening on host:port */
export function listenTcp(
  host: string,
  port: number,
  onConnection: (raw: net.Socket) => void,
): Promise<net.Server> {
  return new Promise((resolve, reject) => {
    const server = net.createServer({ pauseOnConnect: true, allowHalfOpen: true }, onConnection);
    const fail = (err: Error) => reject(kernelErrorFrom('sockListen', err));
    server.once('error', fail);
    server.listen({ host, port }, () => {
      server.off('error', fail);
      resolve(server);
    });
  });
}

/** adoptAccepted: re-wrap an accepted (paused) socket's handle so that it reads through onread */
export function adoptAccepted(raw: net.Socket, onread: OnRead): net.Socket {
  const r = raw as unknown as { _handle: unknown };
  const handle = r._handle;
  r._handle = null;
  const sock = new net.Socket({ handle, onread, allowHalfOpen: true } as net.SocketConstructorOpts);
  sock.setNoDelay(true);
  /* the server counts the original object as a connection until it closes */
  sock.once('close', () => raw.destroy());
  return sock;
}

const CODES: Record<string, KernelErrorCode> = {
  ECONNREFUSED: 'ECONNREFUSED',
  ECONNRESET: 'ECONNRESET',
  EPIPE: 'EPIPE',
  ETIMEDOUT: 'ETIMEDOUT',
  EADDRINUSE: 'EADDRINUSE',
  EACCES: 'EACCES',
  EADDRNOTAVAIL: 'EINVAL',
  ENOTFOUND: 'EINVAL',
  ERR_STREAM_DESTROYED: 'EPIPE',
  ERR_STREAM_WRITE_AFTER_END: 'EPIPE',
};

/** kernelErrorFrom: a Node error as the KernelError a socket call throws */
export function kernelErrorFrom(fn: string, err: unknown): KernelError {
  if (err instanceof KernelError) return err;
  const e = err as NodeJS.ErrnoException;
  const code = CODES[e?.code ?? ''] ?? 'EIO';
  return new KernelError(code, `${fn}: ${e?.message ?? String(err)}`, { cause: err });
}

/**
 * resetTcp: abort a connection with a reset (RST), never a FIN: the peer's host sees ECONNRESET
 * => node:net's resetAndDestroy fails while a half-close (end()) is on its way -- Node has asked
 *    libuv to shut the write side down and libuv has not done it yet, one turn of the event loop:
 *    uv_tcp_close_reset refuses a stream that is shutting down (EINVAL), and Node 20 then reports the
 *    error and never closes the handle, so 'close' never comes. Then the reset waits for the
 *    shutdown to finish ('finish') and goes after it; the peer may then see our FIN before the reset,
 *    after every byte written before the end() -- an end that is true
 * => a socket already destroyed is left as it is
 */
export function resetTcp(sock: net.Socket): void {
  if (sock.destroyed) return;
  if (!shuttingDown(sock)) {
    sock.resetAndDestroy();
    return;
  }
  const reset = () => {
    sock.off('close', gone);
    if (!sock.destroyed) sock.resetAndDestroy();
  };
  const gone = () => sock.off('finish', reset);
  sock.once('finish', reset);
  sock.once('close', gone);
}

/*
 * shuttingDown: has node:net asked for the shutdown (end() called, everything written, so _final
 * has run or is about to) without its 'finish' yet? While writes are pending, end() has not reached
 * libuv and a reset goes through.
 */
function shuttingDown(sock: net.Socket): boolean {
  return sock.writableEnded && !sock.writableFinished && sock.writableLength === 0;
}

/**
 * endWasReset: node:net said 'end' -- was it a reset? On Node 20 (libuv 1.46) a reset that lands
 * while the host socket still holds bytes not yet read is reported as an end: libuv reads the bytes,
 * sees a short read and a hang-up in one wakeup, and takes that for the end without reading again
 * (libuv/libuv#4992, fixed upstream by #4997). After a FIN the host socket still has its peer
 * (CLOSE_WAIT); after a reset it has none (CLOSED), so getpeername fails.
 * => only while our side has not shut down (after our FIN and the peer's, the socket has no peer
 *    either): false then, and false when the handle is gone
 */
export function endWasReset(sock: net.Socket): boolean {
  if (sock.writableEnded) return false;
  const handle = (sock as unknown as { _handle: { getpeername?: (out: object) => number } | null })._handle;
  if (typeof handle?.getpeername !== 'function') return false;
  return handle.getpeername({}) !== 0;
}

/** resetError: the error node:net would have reported for a reset it took for an end */
export function resetError(): NodeJS.ErrnoException {
  const err: NodeJS.ErrnoException = new Error('read ECONNRESET (node:net reported the reset as an end)');
  err.code = 'ECONNRESET';
  err.syscall = 'read';
  return err;
}
