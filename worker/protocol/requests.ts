import { CANCEL_REQUEST_CODE, FrontendType, MIN_STARTUP_PACKET_LENGTH, NEGOTIATE_SSL_CODE } from './constants.js';
import { SCRAM_SHA_256 } from './scram.js';

/** Messages the bridge itself sends to PostgreSQL (protocol-message-formats). */

const encoder = new TextEncoder();

/** A typed frontend message: type byte, length counting itself, body. */
export function frontendMessage(type: FrontendType, body: Uint8Array = new Uint8Array()): Uint8Array {
  const out = new Uint8Array(5 + body.length);
  out[0] = type;
  new DataView(out.buffer).setInt32(1, 4 + body.length);
  out.set(body, 5);
  return out;
}

/** SSLRequest: length 8, code 80877103. */
export const SSL_REQUEST = (() => {
  const out = new Uint8Array(MIN_STARTUP_PACKET_LENGTH);
  const view = new DataView(out.buffer);
  view.setUint32(0, MIN_STARTUP_PACKET_LENGTH);
  view.setUint32(4, NEGOTIATE_SSL_CODE);
  return out;
})();

/** Terminate: 'X' with no body. */
export const TERMINATE = frontendMessage(FrontendType.Terminate);

/** SASLInitialResponse: the mechanism, then the length-prefixed client-first-message. */
export function saslInitialResponse(clientFirst: string): Uint8Array {
  const mechanism = encoder.encode(`${SCRAM_SHA_256}\0`);
  const data = encoder.encode(clientFirst);
  const body = new Uint8Array(mechanism.length + 4 + data.length);
  body.set(mechanism);
  new DataView(body.buffer).setInt32(mechanism.length, data.length);
  body.set(data, mechanism.length + 4);
  return frontendMessage(FrontendType.PasswordMessage, body);
}

/** SASLResponse: the client-final-message as it is. */
export function saslResponse(clientFinal: string): Uint8Array {
  return frontendMessage(FrontendType.PasswordMessage, encoder.encode(clientFinal));
}

/** CancelRequest (protocol-flow, "Canceling Requests in Progress"): BackendKeyData's body after the code. */
export function cancelRequest(backendKeyData: Uint8Array): Uint8Array {
  const out = new Uint8Array(8 + backendKeyData.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, out.length);
  view.setUint32(4, CANCEL_REQUEST_CODE);
  out.set(backendKeyData, 8);
  return out;
}
