export { Socket, SocketError } from './socket.js';
export { pgStream, postgresSocket } from './drivers.js';
export type { BufferClass, SocketOptions, WebSocketConstructor, WebSocketLike } from './socket.js';
export type { AcceptableWebSocket, UpgradingFetch } from './fetch-upgrade.js';
