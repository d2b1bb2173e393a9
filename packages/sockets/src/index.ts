/*
 * @loanout/sockets: sockets of the loanout kernel over real TCP -- send by copy, loan or auto; receive.
 *
 * A Socket is made by sockConnect or a listener, never by `new` (its constructor takes the host
 * socket and the receive area): it is exported as a type. Its send and receive buffers are internals.
 */

export type { EchoMode, EchoServer, EchoServerOptions, EchoStats } from './echo.js';
export { createEchoServer } from './echo.js';
export type { RecvFallback } from './sockbuf.js';
export type { RecvMode, RecvTail } from './soreceive.js';
export { autoThresholdKnown, sosendAutoThreshold } from './sosend_auto.js';
export type {
  CloseOptions,
  RecvOptions,
  SendMode,
  SendOptions,
  SendResult,
  Socket,
  SocketOptions,
  SocketStats,
} from './uipc_socket.js';
export { SendError } from './uipc_socket.js';
export type { ConnectOptions, Listener, ListenOptions } from './uipc_syscalls.js';
export { sockConnect, sockListen } from './uipc_syscalls.js';
