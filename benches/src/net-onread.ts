/*
 * net-onread.ts: reading an accepted connection through node:net's `onread`, for the bench's
 * children.
 *
 * `onread` makes Node read straight into memory we give it, with no allocation per read -- what a
 * receiver or echo server that must not be the bottleneck wants. node:net only takes the option when
 * it constructs a socket, so an accepted one (from a server that pauses on connect, so nothing has been
 * read yet) is re-wrapped around its libuv handle: Node's private `_handle`, the same trick as the
 * sockets package's net_glue.ts, kept here in one place.
 */
import net from 'node:net';

export interface OnRead {
  buffer: Buffer | (() => Buffer);
  callback: (nread: number, buf: Buffer) => boolean;
}

/*
 * adoptAccepted: a socket reading an accepted (paused) connection through `onread`.
 * => the original socket is destroyed when the new one closes (the server counts it till then)
 */
export function adoptAccepted(raw: net.Socket, onread: OnRead): net.Socket {
  const r = raw as unknown as { _handle: unknown };
  const handle = r._handle;
  r._handle = null;
  const sock = new net.Socket({ handle, onread } as net.SocketConstructorOpts);
  sock.setNoDelay(true);
  sock.on('error', () => sock.destroy());
  sock.once('close', () => raw.destroy());
  return sock;
}
