export { Socket, SocketError } from './socket.js';
export type { SocketOptions, WebSocketConstructor, WebSocketLike } from './socket.js';
