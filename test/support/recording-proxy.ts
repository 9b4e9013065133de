import { connect, createServer, type Server, type Socket } from 'node:net';
import { listenOnLoopback } from './loopback.js';

export interface RecordedConnection {
  /** Bytes the bridge sent toward PostgreSQL on this connection, in order. */
  readonly toServer: Buffer[];
  /** Resolves when both sides of this connection are closed. */
  readonly closed: Promise<void>;
}

/**
 * A plain TCP relay on loopback between the bridge and the real PostgreSQL that records what the
 * bridge sends, so tests can check what the database actually received. With
 * `serverMessagesBeforeStall`, it passes on only that many of the server's messages and holds the
 * rest: a server that stops answering partway, which a real PostgreSQL cannot be made to do.
 */
export async function startRecordingProxy(
  target: { host: string; port: number },
  options: { serverMessagesBeforeStall?: number } = {},
) {
  const connections: RecordedConnection[] = [];
  const sockets = new Set<Socket>();
  const server: Server = createServer((client) => {
    const upstream = connect(target.port, target.host);
    const toServer: Buffer[] = [];
    sockets.add(client).add(upstream);
    const closed = Promise.all([
      new Promise<void>((resolve) => client.once('close', () => resolve())),
      new Promise<void>((resolve) => upstream.once('close', () => resolve())),
    ]).then(() => undefined);
    connections.push({ toServer, closed });
    client.on('data', (chunk) => {
      toServer.push(chunk);
      upstream.write(chunk);
    });
    const passOn =
      options.serverMessagesBeforeStall === undefined
        ? (chunk: Buffer) => chunk
        : stallAfter(options.serverMessagesBeforeStall);
    upstream.on('data', (chunk) => client.write(passOn(chunk)));
    client.on('end', () => upstream.end());
    upstream.on('end', () => client.end());
    client.on('error', () => upstream.destroy());
    upstream.on('error', () => client.destroy());
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  });
  return { connections, ...(await listenOnLoopback(server, sockets)) };
}

/** Passes on the server's bytes up to the end of its first `messages` messages (type byte, length, body), holding the rest. */
function stallAfter(messages: number): (chunk: Buffer) => Buffer {
  let received = Buffer.alloc(0);
  let passed = 0;
  return (chunk) => {
    received = Buffer.concat([received, chunk]);
    let end = 0;
    for (let i = 0; i < messages && end + 5 <= received.length; i++) end += 1 + received.readUInt32BE(end + 1);
    const upTo = Math.min(end, received.length);
    if (upTo <= passed) return Buffer.alloc(0);
    const out = received.subarray(passed, upTo);
    passed = upTo;
    return out;
  };
}
