import { readUint32 } from './bytes.js';
import { AuthCode, BackendType, FRAME_HEADER_LENGTH, MAX_AUTH_REQUEST_LENGTH, MIN_FRAME_LENGTH } from './constants.js';
import { BridgeError } from './errors.js';
import { saslMechanisms } from './sasl-mechanisms.js';
import { SCRAM_SHA_256 } from './scram.js';

/** The channel-binding variant, which binds the exchange to the TLS connection it runs over (RFC 5802 §6). */
const PLUS = new TextEncoder().encode(`${SCRAM_SHA_256}-PLUS`);

/** Messages PostgreSQL may send before AuthenticationOk without ending the login. */
const BEFORE_OK = new Set<number>([BackendType.NegotiateProtocolVersion, BackendType.NoticeResponse]);

/**
 * The server→client stream of a login, with AuthenticationSASL rewritten to offer only what the
 * client's leg allows (protocol-flow, "SASL Authentication"). The bridge reaches PostgreSQL over
 * TLS but tells the client "no TLS" (it answers SSLRequest with N), so SCRAM-SHA-256-PLUS, whose
 * channel binding names the bridge's own TLS connection, is not a mechanism the client can use;
 * libpq treats the offer as a protocol violation. No I/O.
 *
 * Only an Authentication message is held back until whole (at most MAX_AUTH_REQUEST_LENGTH, as
 * libpq bounds it); every other byte passes as a view of its chunk. After AuthenticationOk, an
 * ErrorResponse, or any message that only follows a login, chunks pass through untouched.
 */
export class SaslOfferFilter {
  private phase: 'login' | 'passing' = 'login';
  /** Header bytes of the message being read (copied; they pass on unless it is an Authentication). */
  private readonly header = new Uint8Array(FRAME_HEADER_LENGTH);
  private headerFill = 0;
  /** Body bytes of a passing message still to come. */
  private remaining = 0;
  /** Whether the login is over once the passing message ends (after an ErrorResponse). */
  private lastBeforePassing = false;
  /** The Authentication message being held, once its length is known. */
  private held: Uint8Array | null = null;
  private heldFill = 0;

  /** True once the login is over: chunks pass untouched from here on. */
  get passing(): boolean {
    return this.phase === 'passing';
  }

  /** The bytes to relay for `chunk`, in order: views of it, and any Authentication message completed. */
  push(chunk: Uint8Array): Uint8Array[] {
    if (this.phase === 'passing') return [chunk];
    const out: Uint8Array[] = [];
    let passFrom = 0;
    let pos = 0;
    while (pos < chunk.length && this.phase === 'login') {
      if (this.held) {
        const take = Math.min(this.held.length - this.heldFill, chunk.length - pos);
        this.held.set(chunk.subarray(pos, pos + take), this.heldFill);
        this.heldFill += take;
        pos += take;
        passFrom = pos;
        if (this.heldFill < this.held.length) break;
        const message = this.held;
        this.held = null;
        out.push(withoutPlus(message));
        if (readUint32(message, FRAME_HEADER_LENGTH) === AuthCode.Ok) this.phase = 'passing';
        continue;
      }
      if (this.remaining > 0) {
        const skip = Math.min(this.remaining, chunk.length - pos);
        pos += skip;
        this.remaining -= skip;
        if (this.remaining === 0 && this.lastBeforePassing) this.phase = 'passing';
        continue;
      }
      if (this.headerFill === 0 && chunk[pos] === BackendType.Authentication) {
        // Everything before it goes on; the Authentication message waits until whole.
        if (pos > passFrom) out.push(chunk.subarray(passFrom, pos));
        passFrom = pos;
      }
      const take = Math.min(FRAME_HEADER_LENGTH - this.headerFill, chunk.length - pos);
      this.header.set(chunk.subarray(pos, pos + take), this.headerFill);
      this.headerFill += take;
      pos += take;
      const type = this.header[0]!;
      if (type === BackendType.Authentication) passFrom = pos;
      if (this.headerFill < FRAME_HEADER_LENGTH) continue;
      this.headerFill = 0;
      const length = readUint32(this.header, 1);
      if (type === BackendType.Authentication) {
        if (length < MIN_FRAME_LENGTH + 4 || length > MAX_AUTH_REQUEST_LENGTH) {
          throw new BridgeError('SERVER_AUTH_FAILED', 'the database server sent an invalid authentication request');
        }
        this.held = new Uint8Array(length + 1);
        this.held.set(this.header);
        this.heldFill = FRAME_HEADER_LENGTH;
      } else if (type === BackendType.ErrorResponse || BEFORE_OK.has(type)) {
        this.remaining = Math.max(length, MIN_FRAME_LENGTH) - MIN_FRAME_LENGTH;
        this.lastBeforePassing = type === BackendType.ErrorResponse;
        if (this.remaining === 0 && this.lastBeforePassing) this.phase = 'passing';
      } else {
        // A message that only follows a login (ParameterStatus, say): the login is over.
        this.phase = 'passing';
      }
    }
    if (chunk.length > passFrom) out.push(chunk.subarray(passFrom));
    return out;
  }
}

/** AuthenticationSASL without SCRAM-SHA-256-PLUS; any other message (or a malformed list) as it is. */
function withoutPlus(message: Uint8Array): Uint8Array {
  if (readUint32(message, FRAME_HEADER_LENGTH) !== AuthCode.SASL) return message;
  const names = saslMechanisms(message.subarray(FRAME_HEADER_LENGTH + 4));
  if (names === null) return message;
  const kept = names.filter((name) => !sameBytes(name, PLUS));
  if (kept.length === names.length) return message;
  const length = 4 + 4 + kept.reduce((n, name) => n + name.length + 1, 0) + 1;
  const out = new Uint8Array(length + 1);
  out.set(message.subarray(0, FRAME_HEADER_LENGTH + 4));
  new DataView(out.buffer, out.byteOffset, out.byteLength).setUint32(1, length);
  let offset = FRAME_HEADER_LENGTH + 4;
  for (const name of kept) {
    out.set(name, offset);
    offset += name.length + 1;
  }
  return out;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((byte, i) => byte === b[i]);
}
