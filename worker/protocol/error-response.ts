import { BackendType, ErrorField } from './constants.js';
import type { BridgeError } from './errors.js';

const encoder = new TextEncoder();

/**
 * A field's text ends at its first NUL, so a NUL inside one (from a client's `?host=a%00C…`, say)
 * would end it early and start fields of the client's choosing: NULs become U+FFFD.
 */
function withoutNul(text: string): string {
  return text.replaceAll('\0', '\uFFFD');
}

/**
 * Encodes a FATAL ErrorResponse (protocol-message-formats, "ErrorResponse"): fields S, V, C, M
 * and optionally D, each a code byte and a NUL-terminated string, then a final NUL.
 */
export function encodeFatalError(error: BridgeError): Uint8Array {
  const fields: Array<[ErrorField, string]> = [
    [ErrorField.Severity, 'FATAL'],
    [ErrorField.SeverityNonLocalized, 'FATAL'],
    [ErrorField.Code, error.sqlState],
    [ErrorField.Message, error.message],
  ];
  if (error.detail !== undefined) fields.push([ErrorField.Detail, error.detail]);

  const encoded = fields.map(([field, text]) => [field, encoder.encode(withoutNul(text))] as const);
  const bodyLength = encoded.reduce((sum, [, bytes]) => sum + 1 + bytes.length + 1, 0) + 1;
  const out = new Uint8Array(1 + 4 + bodyLength);
  const view = new DataView(out.buffer);
  out[0] = BackendType.ErrorResponse;
  view.setInt32(1, 4 + bodyLength);
  let offset = 5;
  for (const [field, bytes] of encoded) {
    out[offset++] = field;
    out.set(bytes, offset);
    offset += bytes.length + 1; // the NUL terminator is already zero
  }
  return out; // the final NUL terminator is already zero
}
