/**
 * The Analytics Engine data point for one ended session. Analytics Engine drops a point whose
 * index is over 96 bytes, so the index (the target) is cut to fit; the blobs stay far below their
 * 16 KB total (a host name, two PostgreSQL identifiers and a short reason).
 */
export const MAX_INDEX_BYTES = 96;

export interface SessionSummary {
  target: string;
  user: string | null;
  database: string | null;
  durationMs: number;
  bytesToServer: number;
  bytesToClient: number;
  frames: number;
  closeCode: number;
  closeReason: string;
}

export interface DataPoint {
  indexes: string[];
  blobs: string[];
  doubles: number[];
}

export function sessionDataPoint(s: SessionSummary): DataPoint {
  return {
    indexes: [cutToBytes(s.target, MAX_INDEX_BYTES)],
    blobs: [s.target, s.user ?? '', s.database ?? '', s.closeReason],
    doubles: [s.durationMs, s.bytesToServer, s.bytesToClient, s.frames, s.closeCode],
  };
}

/** The longest prefix of `text` whose UTF-8 form fits in `max` bytes, never splitting a character. */
function cutToBytes(text: string, max: number): string {
  const encoder = new TextEncoder();
  if (encoder.encode(text).length <= max) return text;
  let cut = '';
  let bytes = 0;
  for (const char of text) {
    const size = encoder.encode(char).length;
    if (bytes + size > max) break;
    cut += char;
    bytes += size;
  }
  return cut;
}
