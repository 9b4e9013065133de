import type { EdgeLogin } from './policy/startup-policy.js';
import { BackendFramer } from './protocol/backend-framer.js';
import { concatBytes } from './protocol/bytes.js';
import { MAX_ERRLEN } from './protocol/constants.js';
import { EdgeLoginMachine } from './protocol/edge-login-machine.js';
import { BridgeError } from './protocol/errors.js';
import type { IterationRange } from './protocol/scram.js';

/** What the login needs of a PostgresSocket: its two streams (a stream's default reader will do), and no Worker-only types. */
export interface LoginConnection {
  readonly reader: { read(): Promise<ReadableStreamReadResult<Uint8Array>> };
  readonly writer: WritableStreamDefaultWriter<Uint8Array>;
}

/**
 * Logs in to PostgreSQL as `login.role` with its edge-held password (the machine in
 * protocol/edge-login-machine.ts decides; this is only its I/O). Resolves with the server's bytes
 * from AuthenticationOk on, after any NegotiateProtocolVersion, or with PostgreSQL's own
 * ErrorResponse (such as 28P01): either way the client gets them as if it had logged in itself.
 * Rejects with a BridgeError when the server does not complete SCRAM-SHA-256 as it must; then
 * nothing it said is for the client.
 */
export async function edgeLogin(
  postgres: LoginConnection,
  login: EdgeLogin,
  limits: IterationRange,
): Promise<Uint8Array> {
  const machine = new EdgeLoginMachine(login.password, limits);
  const framer = new BackendFramer(MAX_ERRLEN, 'SERVER_AUTH_FAILED');
  for (;;) {
    let message = framer.next();
    while (message === null) {
      const { value, done } = await postgres.reader.read();
      if (done) throw new BridgeError('SERVER_CONNECTION_LOST', 'server closed the connection during authentication');
      framer.push(value);
      message = framer.next();
    }
    const step = await machine.receive(message);
    switch (step.kind) {
      case 'send':
        await postgres.writer.write(step.bytes);
        break;
      case 'read':
        break;
      case 'logged-in':
      case 'refused-by-server':
        return concatBytes(step.forClient, framer.rest());
      case 'failed':
        throw step.error;
    }
  }
}
