import { connect } from 'cloudflare:sockets';
import type { BridgeConfig } from './config.js';
import type { Target } from './policy/targets.js';
import { ENCRYPTION_REFUSED, SSL_ACCEPTED } from './protocol/constants.js';
import { BridgeError } from './protocol/errors.js';
import { SSL_REQUEST } from './protocol/requests.js';
import { READ_BYTES } from './relay.js';

/** Reads into a fresh buffer each time: for the few reads of a login or a cancel. */
export interface ByteReader {
  read(): Promise<ReadableStreamReadResult<Uint8Array>>;
}

/** An open byte stream to PostgreSQL, past TLS negotiation when configured. */
export interface PostgresSocket {
  readonly reader: ByteReader;
  /**
   * Reads into `view`, whose buffer the stream takes and gives back as the result's value (a
   * view of the bytes read in that same memory): the relay reads every chunk into one buffer,
   * without allocating one per read.
   */
  readInto(view: Uint8Array): Promise<ReadableStreamReadResult<Uint8Array>>;
  readonly writer: WritableStreamDefaultWriter<Uint8Array>;
  close(): void;
}

/**
 * Opens TCP to the configured PostgreSQL and, when TLS is required, negotiates it the way libpq does
 * with sslmode=verify-full: SSLRequest, a one-byte answer, then the TLS handshake (protocol-flow,
 * "SSL Session Encryption"). Then sends `greeting` (the StartupMessage or CancelRequest): the
 * handshake only runs with the first write, and a connection is only open once that write is done.
 * Throws BridgeError with an 08001 code on failure; the underlying error text stays in the Worker.
 */
export async function openPostgresSocket(
  config: BridgeConfig,
  target: Target,
  greeting: Uint8Array,
  log: (msg: string) => void,
): Promise<PostgresSocket> {
  const sockets: Socket[] = [];
  // One deadline for the whole sequence: a server that accepts and then stays silent must not hang us.
  const opening = negotiate(config, target, greeting, log, sockets);
  opening.catch(() => {}); // after a timeout, its own failure has no one left to tell
  try {
    return await withTimeout(opening, config.connectTimeoutMs);
  } catch (error) {
    for (const socket of sockets) socket.close().catch(() => {});
    if (error instanceof BridgeError) throw error;
    if (error instanceof ConnectTimeout) {
      throw new BridgeError(
        'SERVER_UNREACHABLE',
        `could not connect to the database server: timed out after ${config.connectTimeoutMs} ms`,
      );
    }
    log(`connect to ${target.host}:${target.port} failed: ${String(error)}`);
    throw new BridgeError('SERVER_UNREACHABLE', 'could not connect to the database server: connection failed');
  }
}

async function negotiate(
  config: BridgeConfig,
  target: Target,
  greeting: Uint8Array,
  log: (msg: string) => void,
  sockets: Socket[],
): Promise<PostgresSocket> {
  const socket = connect(
    { hostname: target.host, port: target.port },
    { secureTransport: config.tls === 'require' ? 'starttls' : 'off', allowHalfOpen: false },
  );
  sockets.push(socket);
  await socket.opened;
  if (config.tls === 'off') {
    const plain = wrap(socket);
    await plain.writer.write(greeting);
    return plain;
  }

  const writer = socket.writable.getWriter();
  await writer.write(SSL_REQUEST);
  writer.releaseLock();
  const answer = await readOneByte(socket);
  if (answer !== SSL_ACCEPTED) {
    throw new BridgeError(
      'SERVER_TLS_REFUSED',
      'the database server does not accept TLS connections',
      answer === ENCRYPTION_REFUSED ? undefined : 'It answered the SSLRequest with an unexpected byte.',
    );
  }
  const tls = socket.startTls();
  sockets.push(tls);
  const secure = wrap(tls);
  try {
    await secure.writer.write(greeting);
  } catch (error) {
    log(`TLS handshake with ${target.host}:${target.port} failed: ${String(error)}`);
    throw new BridgeError('SERVER_TLS_FAILED', 'could not establish a TLS connection to the database server');
  }
  return secure;
}

function wrap(socket: Socket): PostgresSocket {
  const reader = socket.readable.getReader({ mode: 'byob' });
  return {
    reader: { read: () => reader.read(new Uint8Array(READ_BYTES)) },
    readInto: (view) => reader.read(view),
    writer: socket.writable.getWriter(),
    close: () => {
      // Stop reading first: PostgreSQL blocked sending a result only notices a socket that is gone.
      void reader.cancel().catch(() => {});
      void socket.close().catch(() => {});
    },
  };
}

/** Reads exactly one byte, leaving the rest of the stream untouched for the TLS layer. */
async function readOneByte(socket: Socket): Promise<number | undefined> {
  const reader = socket.readable.getReader({ mode: 'byob' });
  try {
    const { value, done } = await reader.read(new Uint8Array(1));
    return done || value.length === 0 ? undefined : value[0];
  } finally {
    reader.releaseLock();
  }
}

export class ConnectTimeout extends Error {}

export function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | null = null;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new ConnectTimeout()), ms);
  });
  return Promise.race([promise, timeout]).finally(() => {
    if (timer !== null) clearTimeout(timer);
  });
}

/**
 * Sends a CancelRequest on a connection of its own and waits until PostgreSQL closes it, which
 * the postmaster does once it has signalled the backend (protocol-flow, "Canceling Requests in
 * Progress"). Bounded by the connect timeout; throws BridgeError as openPostgresSocket does.
 */
export async function sendCancelRequest(
  config: BridgeConfig,
  target: Target,
  packet: Uint8Array,
  log: (msg: string) => void,
): Promise<void> {
  const postgres = await openPostgresSocket(config, target, packet, log);
  try {
    await withTimeout(readToEnd(postgres.reader), config.connectTimeoutMs);
  } catch {
    // Sent all the same; the server just did not close in time.
  } finally {
    postgres.close();
  }
}

async function readToEnd(reader: ByteReader): Promise<void> {
  while (!(await reader.read()).done);
}
