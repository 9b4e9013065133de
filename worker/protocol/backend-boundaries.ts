import { readUint32 } from './bytes.js';
import { BackendType, FRAME_HEADER_LENGTH, MIN_FRAME_LENGTH } from './constants.js';

/**
 * Backend messages after which PostgreSQL may wait for the client or which the client must see
 * promptly: ReadyForQuery, authentication requests, the start of COPY FROM STDIN, errors, and the
 * asynchronous notices, notifications and parameter changes.
 */
const FLUSH_AFTER = new Uint8Array(256);
for (const type of [
  BackendType.ReadyForQuery,
  BackendType.Authentication,
  BackendType.CopyInResponse,
  BackendType.CopyBothResponse,
  BackendType.ErrorResponse,
  BackendType.NoticeResponse,
  BackendType.NotificationResponse,
  BackendType.ParameterStatus,
  BackendType.PortalSuspended,
]) {
  FLUSH_AFTER[type] = 1;
}

/**
 * Follows message boundaries in the server→client stream without copying it (protocol-overview,
 * "Messaging Overview"). The relay asks it two things: whether the bytes seen so far end on a
 * message boundary (only there may the bridge add a message of its own), and whether the last
 * complete message is one the client should get without delay.
 */
export class BackendBoundaries {
  private remaining = 0;
  private headerFill = 0;
  private readonly header = new Uint8Array(FRAME_HEADER_LENGTH);
  private lastType = -1;

  /** Scans a chunk; returns true when it ends right after a message to flush without delay. */
  scan(chunk: Uint8Array): boolean {
    let pos = 0;
    while (pos < chunk.length) {
      if (this.remaining > 0) {
        const skip = Math.min(this.remaining, chunk.length - pos);
        pos += skip;
        this.remaining -= skip;
        continue;
      }
      const take = Math.min(FRAME_HEADER_LENGTH - this.headerFill, chunk.length - pos);
      this.header.set(chunk.subarray(pos, pos + take), this.headerFill);
      this.headerFill += take;
      pos += take;
      if (this.headerFill < FRAME_HEADER_LENGTH) break;
      this.headerFill = 0;
      this.lastType = this.header[0]!;
      // A length below 4 cannot come from PostgreSQL; count it as an empty body to stay in step.
      this.remaining = Math.max(readUint32(this.header, 1), MIN_FRAME_LENGTH) - MIN_FRAME_LENGTH;
    }
    return this.atBoundary && FLUSH_AFTER[this.lastType] === 1;
  }

  /** True when every message seen so far is complete. */
  get atBoundary(): boolean {
    return this.remaining === 0 && this.headerFill === 0;
  }

  /** The type byte of the last message whose header was seen, or -1 before any. */
  get lastMessageType(): number {
    return this.lastType;
  }
}
