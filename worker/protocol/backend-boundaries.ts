import { readUint32 } from './bytes.js';
import { BackendType, FRAME_HEADER_LENGTH, MAX_CANCEL_KEY_LENGTH, MIN_FRAME_LENGTH } from './constants.js';

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

/** Bodies the bridge keeps: ReadyForQuery's status byte, BackendKeyData's process id and key. */
const KEEP_BODY_OF = new Uint8Array(256);
KEEP_BODY_OF[BackendType.ReadyForQuery] = 1;
KEEP_BODY_OF[BackendType.BackendKeyData] = 1;
const MAX_KEPT_BODY = 4 + MAX_CANCEL_KEY_LENGTH;

/**
 * Follows message boundaries in the server→client stream without copying it (protocol-overview,
 * "Messaging Overview"). The relay asks it whether the bytes seen so far end on a message
 * boundary (only there may the bridge add a message of its own), and whether the last complete
 * message is one the client should get without delay; the session reads the ReadyForQuery and
 * CopyInResponse messages seen (for its idle limits) and the BackendKeyData (to cancel a running
 * statement).
 */
export class BackendBoundaries {
  private remaining = 0;
  private headerFill = 0;
  private readonly header = new Uint8Array(FRAME_HEADER_LENGTH);
  private lastType = -1;
  /** The body being kept, while its message passes. */
  private body: Uint8Array | null = null;
  private bodyFill = 0;
  private readyCount = 0;
  private copyInResponses = 0;
  private copyingIn = false;
  private lastStatus = -1;
  private keyData: Uint8Array | null = null;

  /** Scans a chunk; returns true when it ends right after a message to flush without delay. */
  scan(chunk: Uint8Array): boolean {
    let pos = 0;
    while (pos < chunk.length) {
      if (this.remaining > 0) {
        const skip = Math.min(this.remaining, chunk.length - pos);
        if (this.body) this.keep(chunk.subarray(pos, pos + skip));
        pos += skip;
        this.remaining -= skip;
      } else if (this.headerFill === 0 && chunk.length - pos >= FRAME_HEADER_LENGTH) {
        // The common case, a header whole in the chunk: read in place, no view made per message.
        this.startMessage(chunk[pos]!, readUint32(chunk, pos + 1));
        pos += FRAME_HEADER_LENGTH;
        if (this.body && this.remaining === 0) this.keep(chunk.subarray(pos, pos));
      } else {
        // A header split across chunks: gathered byte by byte.
        this.header[this.headerFill++] = chunk[pos++]!;
        if (this.headerFill < FRAME_HEADER_LENGTH) continue;
        this.headerFill = 0;
        this.startMessage(this.header[0]!, readUint32(this.header, 1));
        if (this.body && this.remaining === 0) this.keep(chunk.subarray(pos, pos));
      }
    }
    return this.atBoundary && FLUSH_AFTER[this.lastType] === 1;
  }

  private startMessage(type: number, length: number): void {
    this.lastType = type;
    if (type === BackendType.CopyInResponse) {
      this.copyInResponses += 1;
      this.copyingIn = true;
    } else if (type === BackendType.CommandComplete || type === BackendType.ErrorResponse) {
      this.copyingIn = false;
    }
    // A length below 4 cannot come from PostgreSQL; count it as an empty body to stay in step.
    this.remaining = Math.max(length, MIN_FRAME_LENGTH) - MIN_FRAME_LENGTH;
    if (KEEP_BODY_OF[type] === 1 && this.remaining <= MAX_KEPT_BODY) {
      this.body = new Uint8Array(this.remaining);
      this.bodyFill = 0;
    }
  }

  private keep(bytes: Uint8Array): void {
    const body = this.body!;
    body.set(bytes, this.bodyFill);
    this.bodyFill += bytes.length;
    if (this.bodyFill < body.length) return;
    this.body = null;
    if (this.lastType === BackendType.ReadyForQuery) {
      this.readyCount += 1;
      this.lastStatus = body[0] ?? -1;
    } else {
      this.keyData = body;
    }
  }

  /** ReadyForQuery messages seen so far. */
  get readyForQueryCount(): number {
    return this.readyCount;
  }

  /** CopyInResponse messages seen so far: the server is reading COPY FROM STDIN data. */
  get copyInResponseCount(): number {
    return this.copyInResponses;
  }

  /** Whether the last CopyInResponse seen has not yet been ended by a CommandComplete or an ErrorResponse. */
  get inCopyIn(): boolean {
    return this.copyingIn;
  }

  /** The transaction status of the last ReadyForQuery (I, T or E), or -1 before any. */
  get transactionStatus(): number {
    return this.lastStatus;
  }

  /** BackendKeyData's body (process id, then the secret key), once the server sent it. */
  get backendKeyData(): Uint8Array | null {
    return this.keyData;
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
