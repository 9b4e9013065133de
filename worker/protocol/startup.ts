import {
  CANCEL_REQUEST_CODE,
  CANCEL_REQUEST_MAX_LENGTH,
  CANCEL_REQUEST_MIN_LENGTH,
  NAMEDATALEN,
  NEGOTIATE_GSS_CODE,
  NEGOTIATE_SSL_CODE,
  PROTOCOL_MAJOR_SUPPORTED,
  PROTOCOL_MINOR_LATEST,
} from './constants.js';
import { BridgeError } from './errors.js';

/** A StartupMessage's protocol version and its parameters, in the order the client sent them. */
export interface StartupMessage {
  readonly majorVersion: number;
  readonly minorVersion: number;
  /** As sent (PostgreSQL truncates `user` and `database` itself). */
  readonly parameters: ReadonlyArray<readonly [name: string, value: string]>;
  /** The role PostgreSQL will look up: the last `user`, truncated as PostgreSQL truncates it. */
  readonly user: string;
  /** The database PostgreSQL will look up: the last non-empty `database` or else the user, truncated. */
  readonly database: string;
}

export type StartupPacket =
  | { readonly kind: 'ssl-request' }
  | { readonly kind: 'gssenc-request' }
  | { readonly kind: 'cancel-request'; readonly processId: number; readonly secretKey: Uint8Array }
  | { readonly kind: 'startup-message'; readonly message: StartupMessage };

/** Which encryption requests the client has already been answered, as the postmaster tracks them. */
export interface NegotiationState {
  readonly sslDone: boolean;
  readonly gssDone: boolean;
}

/** Strict: bytes that are not UTF-8 are refused, and a leading BOM is kept, as PostgreSQL keeps it. */
const decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
const encoder = new TextEncoder();

/**
 * Decodes one complete startup-phase packet whose length (first 4 bytes) is already known to be
 * within bounds, deciding as ProcessStartupPacket() in postmaster does (protocol-flow, "Start-up").
 * Throws BridgeError for anything PostgreSQL would refuse.
 */
export function decodeStartupPacket(packet: Uint8Array, state: NegotiationState): StartupPacket {
  const view = new DataView(packet.buffer, packet.byteOffset, packet.byteLength);
  const code = view.getUint32(4);

  // A repeated request falls through to the version check, as in the postmaster.
  if (code === NEGOTIATE_SSL_CODE && !state.sslDone) return expectBare(packet, 'ssl-request');
  if (code === NEGOTIATE_GSS_CODE && !state.gssDone) return expectBare(packet, 'gssenc-request');
  if (code === CANCEL_REQUEST_CODE) return decodeCancelRequest(packet, view);

  const majorVersion = code >>> 16;
  const minorVersion = code & 0xffff;
  if (majorVersion !== PROTOCOL_MAJOR_SUPPORTED) {
    throw new BridgeError(
      'UNSUPPORTED_PROTOCOL',
      `unsupported frontend protocol ${majorVersion}.${minorVersion}: ` +
        `server supports ${PROTOCOL_MAJOR_SUPPORTED}.0 to ${PROTOCOL_MAJOR_SUPPORTED}.${PROTOCOL_MINOR_LATEST}`,
    );
  }
  // Newer minor versions pass through: PostgreSQL answers them with NegotiateProtocolVersion.
  const parameters = decodeParameters(packet);
  // As in the postmaster, a parameter given twice takes its last value.
  const user = parameters.findLast(([name]) => name === 'user')?.[1] ?? '';
  if (user === '') {
    throw new BridgeError('MISSING_USER', 'no PostgreSQL user name specified in startup packet');
  }
  const database = parameters.findLast(([name]) => name === 'database')?.[1] || user;
  return {
    kind: 'startup-message',
    message: { majorVersion, minorVersion, parameters, user: postgresName(user), database: postgresName(database) },
  };
}

/**
 * A user or database name as ProcessStartupPacket() leaves it: cut to NAMEDATALEN - 1 bytes,
 * byte-wise (not at a character boundary, unlike identifiers in SQL). A cut inside a character
 * leaves bytes that are not UTF-8 and can name no role or database of a UTF-8 server; it is
 * refused rather than judged as some other name.
 */
export function postgresName(name: string): string {
  const bytes = encoder.encode(name);
  if (bytes.length < NAMEDATALEN) return name;
  return decode(bytes.subarray(0, NAMEDATALEN - 1));
}

function decode(bytes: Uint8Array): string {
  try {
    return decoder.decode(bytes);
  } catch {
    throw new BridgeError('INVALID_STARTUP_ENCODING', 'invalid byte sequence for encoding "UTF8" in startup packet');
  }
}

function expectBare(packet: Uint8Array, kind: 'ssl-request' | 'gssenc-request'): StartupPacket {
  if (packet.length !== 8) throw new BridgeError('INVALID_STARTUP_LENGTH', 'invalid length of startup packet');
  return { kind };
}

function decodeCancelRequest(packet: Uint8Array, view: DataView): StartupPacket {
  if (packet.length < CANCEL_REQUEST_MIN_LENGTH || packet.length > CANCEL_REQUEST_MAX_LENGTH) {
    throw new BridgeError('INVALID_CANCEL_REQUEST', 'invalid length of query cancel packet');
  }
  return { kind: 'cancel-request', processId: view.getInt32(8), secretKey: packet.slice(12) };
}

/** Name/value pairs, each NUL-terminated, ending with an empty name that must be the last byte. */
function decodeParameters(packet: Uint8Array): Array<[string, string]> {
  const parameters: Array<[string, string]> = [];
  let offset = 8;
  for (;;) {
    const nameEnd = packet.indexOf(0, offset);
    if (nameEnd === -1) break;
    if (nameEnd === offset) {
      if (nameEnd === packet.length - 1) return parameters;
      break;
    }
    const valueEnd = packet.indexOf(0, nameEnd + 1);
    if (valueEnd === -1) break;
    parameters.push([decode(packet.subarray(offset, nameEnd)), decode(packet.subarray(nameEnd + 1, valueEnd))]);
    offset = valueEnd + 1;
  }
  throw new BridgeError('INVALID_STARTUP_LAYOUT', 'invalid startup packet layout: expected terminator as last byte');
}

/** Encodes a StartupMessage (protocol-message-formats) with its parameters in the order given. */
export function encodeStartupMessage(
  majorVersion: number,
  minorVersion: number,
  parameters: ReadonlyArray<readonly [string, string]>,
): Uint8Array {
  const pairs = parameters.flatMap(([name, value]) => [encoder.encode(name), encoder.encode(value)]);
  const length = 8 + pairs.reduce((n, bytes) => n + bytes.length + 1, 0) + 1;
  const out = new Uint8Array(length);
  const view = new DataView(out.buffer);
  view.setInt32(0, length);
  view.setInt16(4, majorVersion);
  view.setInt16(6, minorVersion);
  let offset = 8;
  for (const bytes of pairs) {
    out.set(bytes, offset);
    offset += bytes.length + 1; // NUL terminator already zero
  }
  return out; // final NUL already zero
}
