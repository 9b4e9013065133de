import { connect, createServer, type Server, type Socket } from 'node:net';

export interface RecordedConnection {
  /** Bytes the bridge sent toward PostgreSQL on this connection, in order. */
  readonly toServer: Buffer[];
  /** Resolves when both sides of this connection are closed. */
  readonly closed: Promise<void>;
}

/**
 * A plain TCP relay on loopback between the bridge and the real PostgreSQL that records what the
 * bridge sends, so tests can check what the database actually received.
 */
export async function startRecordingProxy(target: { host: string; port: number }) {
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
    upstream.on('data', (chunk) => client.write(chunk));
    client.on('end', () => upstream.end());
    upstream.on('end', () => client.end());
    client.on('error', () => upstream.destroy());
    upstream.on('error', () => client.destroy());
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as { port: number }).port,
    connections,
    stop: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}
