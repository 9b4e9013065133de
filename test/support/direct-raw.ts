import { connect } from 'node:net';
import { postgres } from './clients.js';

/** Sends bytes to PostgreSQL over plain TCP and collects its answer until it closes the connection. */
export async function rawToPostgres(bytes: Uint8Array, timeoutMs = 5000): Promise<Uint8Array> {
  const db = postgres();
  const socket = connect(db.port, db.host);
  const chunks: Buffer[] = [];
  socket.on('data', (chunk) => chunks.push(chunk));
  socket.write(bytes);
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error('PostgreSQL did not close the connection'));
    }, timeoutMs);
    socket.on('close', () => {
      clearTimeout(timer);
      resolve();
    });
    socket.on('error', () => {});
  });
  return new Uint8Array(Buffer.concat(chunks));
}
