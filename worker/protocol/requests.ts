import { NEGOTIATE_SSL_CODE, MIN_STARTUP_PACKET_LENGTH, FrontendType, MIN_FRAME_LENGTH } from './constants.js';

/** Messages the bridge itself sends to PostgreSQL, built once. */

/** SSLRequest (protocol-message-formats): length 8, code 80877103. */
export const SSL_REQUEST = bytes32(MIN_STARTUP_PACKET_LENGTH, NEGOTIATE_SSL_CODE);

/** Terminate: 'X' and a length of 4. */
export const TERMINATE = new Uint8Array([FrontendType.Terminate, 0, 0, 0, MIN_FRAME_LENGTH]);

function bytes32(...values: number[]): Uint8Array {
  const out = new Uint8Array(values.length * 4);
  const view = new DataView(out.buffer);
  values.forEach((value, i) => view.setUint32(i * 4, value));
  return out;
}
