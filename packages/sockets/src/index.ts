/*
 * @loanout/sockets: sockets of the loanout kernel over real TCP -- send by copy, loan or auto; receive.
 */

export type { EchoMode, EchoServer, EchoServerOptions, EchoStats } from './echo.js';
export { createEchoServer } from './echo.js';
export type { RecvFallback } from './sockbuf.js';
export { RecvBuffer, SendBuffer } from './sockbuf.js';
export type { RecvMode } from './soreceive.js';
export { autoThresholdKnown, sosendAutoThreshold } from './sosend_auto.js';
export type {
  CloseOptions,
  RecvOptions,
  SendMode,
  SendOptions,
  SendResult,
  SocketOptions,
  SocketStats,
} from './uipc_socket.js';
export { SendError, Socket } from './uipc_socket.js';
export type { ConnectOptions, Listener, ListenOptions } from './uipc_syscalls.js';
export { sockConnect, sockListen } from './uipc_syscalls.js';
