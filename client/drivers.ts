import { Socket, type SocketOptions } from './socket.js';

/**
 * pg's `stream` option: a new bridge socket for each connection pg opens. pg's types ask for a
 * Node `Duplex`, which the socket stands in for (it has the part of it pg uses), so the function
 * takes the type its context asks for: `stream: pgStream({ url })` type-checks without a cast.
 */
export function pgStream<Stream = Socket>(options: SocketOptions): () => Stream {
  return () => new Socket(options) as Stream;
}

/**
 * postgres.js's `socket` option, as an object to spread into its options: postgres.js's types
 * leave `socket` out, and a spread property is not an excess one. postgres.js writes at once,
 * which the socket queues until the WebSocket is open.
 */
export function postgresSocket(options: SocketOptions): { socket: () => Socket } {
  return { socket: () => new Socket(options).connect() };
}
