/*
 * @loanout/sockets: sockets of the loanout kernel over real TCP -- send by copy, loan or auto; receive.
 */

export type { EchoServer, EchoServerOptions, EchoStats } from './echo.js';
export { createEchoServer } from './echo.js';
export { RecvBuffer, SendBuffer } from './sockbuf.js';
export { autoThresholdKnown, sosendAutoThreshold } from './sosend_auto.js';
export type {
  CloseOptions,
  SendMode,
  SendOptions,
  SendResult,
  SocketOptions,
  SocketStats,
} from './uipc_socket.js';
export { SendError, Socket } from './uipc_socket.js';
export type { ConnectOptions, Listener, ListenOptions } from './uipc_syscalls.js';
export { sockConnect, sockListen } from './uipc_syscalls.js';
