import type { PostgresSocket } from './postgres-socket.js';
import { concatBytes, readUint32 } from './protocol/bytes.js';
import { BackendType } from './protocol/constants.js';
import { BridgeError } from './protocol/errors.js';
import { saslInitialResponse, saslResponse } from './protocol/requests.js';
import { SCRAM_SHA_256, ScramError, startScram, utf8 } from './protocol/scram.js';

const AUTH_OK = 0;
const AUTH_SASL = 10;
const AUTH_SASL_CONTINUE = 11;
const AUTH_SASL_FINAL = 12;

/**
 * Logs in to PostgreSQL with a password the client never sees (protocol-flow, "SASL
 * Authentication"): answers AuthenticationSASL, SASLContinue and SASLFinal with SCRAM-SHA-256,
 * and returns the server's bytes from AuthenticationOk on (or its ErrorResponse, such as 28P01),
 * which the client then receives as if it had logged in itself. Other messages before those
 * (NegotiateProtocolVersion) are returned too, in order.
 */
export async function edgeLogin(postgres: PostgresSocket, password: string): Promise<Uint8Array> {
  const scram = startScram(password);
  let buffer: Uint8Array = new Uint8Array();
  const forClient: Uint8Array[] = [];
  for (;;) {
    const message = takeMessage(buffer);
    if (message === null) {
      const { value, done } = await postgres.reader.read();
      if (done) throw new BridgeError('SERVER_CONNECTION_LOST', 'server closed the connection during authentication');
      buffer = concatBytes(buffer, value);
      continue;
    }
    buffer = buffer.subarray(message.length);
    const type = message[0];
    if (type === BackendType.ErrorResponse) return concatBytes(...forClient, message, buffer);
    if (type !== BackendType.Authentication) {
      forClient.push(message);
      continue;
    }
    const code = readUint32(message, 5);
    const body = message.subarray(9);
    try {
      switch (code) {
        case AUTH_OK:
          return concatBytes(...forClient, message, buffer);
        case AUTH_SASL:
          if (!cstrings(body).includes(SCRAM_SHA_256)) throw unsupported();
          await postgres.writer.write(saslInitialResponse(scram.clientFirst));
          break;
        case AUTH_SASL_CONTINUE:
          await postgres.writer.write(saslResponse(await scram.respond(utf8(body))));
          break;
        case AUTH_SASL_FINAL:
          await scram.verify(utf8(body));
          break;
        default:
          throw unsupported();
      }
    } catch (error) {
      if (error instanceof ScramError) {
        throw new BridgeError('SERVER_AUTH_FAILED', 'the database server failed SCRAM authentication');
      }
      throw error;
    }
  }
}

function unsupported(): BridgeError {
  return new BridgeError(
    'SERVER_AUTH_FAILED',
    'the database server asked for an authentication method other than SCRAM-SHA-256',
  );
}

/** The first whole message in `buffer`, or null. */
function takeMessage(buffer: Uint8Array): Uint8Array | null {
  if (buffer.length < 5) return null;
  const length = readUint32(buffer, 1);
  return buffer.length >= length + 1 ? buffer.subarray(0, length + 1) : null;
}

function cstrings(body: Uint8Array): string[] {
  return utf8(body)
    .split('\0')
    .filter((s) => s !== '');
}
