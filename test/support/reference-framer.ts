/**
 * A reference model of what the bridge must accept from a client, written separately from the bridge
 * (whole stream at once, no incremental state) so fuzzing can compare the two. It states the rules
 * from the protocol documentation: startup packets 8..10000 bytes, SSL/GSSENC requests once each,
 * protocol 3.x with a user; then typed frames with per-type length bounds.
 */

export interface ReferenceVerdict {
  /** SQLSTATE of the refusal, or null when nothing was refused. */
  refusedWith: string | null;
  /** Normal-phase bytes that may reach PostgreSQL: whole frames, and the part that arrived of a frame whose header was judged. */
  forwarded: Uint8Array;
  /** Whether a StartupMessage was accepted. */
  started: boolean;
}

const u32 = (b: Uint8Array, at: number) => ((b[at]! << 24) | (b[at + 1]! << 16) | (b[at + 2]! << 8) | b[at + 3]!) >>> 0;

const LIMITS: Record<string, [number, number]> = {};
for (const t of 'BdFPQ') LIMITS[t] = [4, Infinity];
for (const t of 'CfDE') LIMITS[t] = [4, 10000];
for (const t of 'cHSX') LIMITS[t] = [4, 4];
LIMITS.p = [4, 65535];

export function referenceVerdict(stream: Uint8Array, maxMessageLength = 0x3fffffff - 1): ReferenceVerdict {
  let at = 0;
  let ssl = false;
  let gss = false;
  const none = (refusedWith: string | null): ReferenceVerdict => ({
    refusedWith,
    forwarded: new Uint8Array(),
    started: false,
  });
  for (;;) {
    if (stream.length - at < 4) return none(null);
    const length = u32(stream, at);
    if (length < 8 || length > 10000) {
      // Terminate (X 00 00 00 04) where a startup packet should be: the client left, refused by no one.
      if (length === 0x58000000 && (stream.length - at < 5 || stream[at + 4] === 4)) return none(null);
      return none('08P01');
    }
    if (stream.length - at < length) return none(null);
    const packet = stream.subarray(at, at + length);
    at += length;
    const code = u32(packet, 4);
    if (code === 80877103 && !ssl) {
      if (length !== 8) return none('08P01');
      ssl = true;
      continue;
    }
    if (code === 80877104 && !gss) {
      if (length !== 8) return none('08P01');
      gss = true;
      continue;
    }
    if (code === 80877102) return none(length >= 16 && length <= 268 ? null : '08P01');
    if (code >>> 16 !== 3) return none('0A000');
    const params = decodeParams(packet.subarray(8));
    if (params === null) return none('08P01');
    if (!params.get('user')) return none('28000');
    break;
  }

  const start = at;
  while (stream.length - at >= 5) {
    const type = String.fromCharCode(stream[at]!);
    const length = u32(stream, at + 1);
    const limits = LIMITS[type];
    if (!limits || length < limits[0] || length > Math.min(limits[1], maxMessageLength)) {
      return { refusedWith: '08P01', forwarded: stream.slice(start, at), started: true };
    }
    at = Math.min(stream.length, at + 1 + length);
  }
  return { refusedWith: null, forwarded: stream.slice(start, at), started: true };
}

/** Name/value pairs terminated by an empty name as the last byte; null when the layout is wrong. */
function decodeParams(body: Uint8Array): Map<string, string> | null {
  const text = Buffer.from(body).toString('latin1');
  if (!text.endsWith('\0')) return null;
  const parts = text.slice(0, -1).split('\0');
  // "a\0b\0" + final "\0" → parts a, b, ''; the empty last part is the terminator's.
  if (parts.pop() !== '' && parts.length > 0) return null;
  if (text === '\0') return new Map();
  if (parts.length % 2 !== 0) return null;
  const params = new Map<string, string>();
  for (let i = 0; i < parts.length; i += 2) {
    if (parts[i] === '') return null;
    params.set(parts[i]!, Buffer.from(parts[i + 1]!, 'latin1').toString('utf8'));
  }
  return params;
}
