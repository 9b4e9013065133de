import {
  FRAME_HEADER_LENGTH,
  FrontendType,
  MAX_STARTUP_PACKET_LENGTH,
  MIN_FRAME_LENGTH,
  MIN_STARTUP_PACKET_LENGTH,
  PG_MAX_AUTH_TOKEN_LENGTH,
  PQ_LARGE_MESSAGE_LIMIT,
  PQ_SMALL_MESSAGE_LIMIT,
} from './constants.js';
import { readUint32 } from './bytes.js';
import { BridgeError } from './errors.js';
import { decodeStartupPacket, type StartupMessage } from './startup.js';

/** What the framer decided about the bytes pushed into it, in stream order. */
export type FrontendEvent =
  | { readonly type: 'ssl-request' }
  | { readonly type: 'gssenc-request' }
  | { readonly type: 'startup'; readonly packet: Uint8Array; readonly message: StartupMessage }
  | { readonly type: 'cancel'; readonly packet: Uint8Array }
  /** Terminate where the startup packet should be: the client left before it began. */
  | { readonly type: 'left-before-startup' }
  /** Validated normal-phase bytes, safe to forward to PostgreSQL as they are. */
  | { readonly type: 'frames'; readonly bytes: Uint8Array }
  /** The stream is refused here: nothing from this point on may be forwarded. */
  | { readonly type: 'refused'; readonly error: BridgeError };

export interface FramerLimits {
  /** Largest normal-phase message, counting its 4 length bytes (but not the type byte). */
  readonly maxMessageLength: number;
}

const STARTUP_LENGTH_BYTES = 4;
/** The first four bytes of Terminate (`X 00 00 00`), read as a startup packet's length. */
const TERMINATE_AS_LENGTH = FrontendType.Terminate * 2 ** 24;

/**
 * Frames the client→server byte stream incrementally, however it is split into chunks, and decides
 * per frame: accept or refuse (protocol-overview, "Messaging Overview"; protocol-flow, "Start-up").
 * No I/O. Accepted normal-phase bytes are returned as views of the input chunks, never copied,
 * except for a frame header that arrived split, which is held back until it can be judged.
 */
export class FrontendFramer {
  private phase: 'startup' | 'normal' | 'ended' = 'startup';
  private sslDone = false;
  private gssDone = false;
  /** A header that arrived split: 4 length bytes in the startup phase, type + length after. */
  private readonly header = new Uint8Array(FRAME_HEADER_LENGTH);
  private headerFill = 0;
  /** The startup packet being collected, once its length is known. */
  private packet: Uint8Array | null = null;
  private packetFill = 0;
  /** Payload bytes of the current normal-phase frame that are still to pass through. */
  private remaining = 0;
  private readonly minLength: Uint32Array;
  private readonly maxLength: Uint32Array;

  constructor(limits: FramerLimits) {
    ({ minLength: this.minLength, maxLength: this.maxLength } = sharedFrameLengthLimits(limits));
  }

  private terminated = false;
  private framesJudged = 0;
  private syncPointsJudged = 0;
  /** Syncs since the last Query, Execute or FunctionCall: a COPY FROM STDIN started there ignores them. */
  private syncsSinceRequest = 0;
  /** The server sent CopyInResponse; the client's first copy message is still to come. */
  private copyInAnnounced = false;
  /** From the client's first copy message to its CopyDone or CopyFail: the server ignores Syncs. */
  private copyingIn = false;

  /** Normal-phase frames accepted so far. */
  get frames(): number {
    return this.framesJudged;
  }

  /**
   * Query, Sync and FunctionCall frames accepted so far that earn a ReadyForQuery each: not the
   * Syncs a COPY FROM STDIN reads (copyInStarted), so the count may go down by those.
   */
  get syncPoints(): number {
    return this.syncPointsJudged;
  }

  /**
   * The server sent CopyInResponse: until the client's CopyDone or CopyFail it reads the client's
   * messages as COPY data and ignores Syncs among them (CopyGetData, copyfromparse.c), those the
   * client sent since the request that started the COPY included (libpq sends one right after
   * Execute). They earn no ReadyForQuery and stop counting once the client's copy data shows the
   * COPY under way; copy messages sent outside a COPY take nothing back.
   */
  copyInStarted(): void {
    this.copyInAnnounced = true;
  }

  /**
   * The server ended the COPY (CommandComplete, or an ErrorResponse: a COPY into a view fails
   * right after CopyInResponse, before reading anything): Syncs count again, and copy messages
   * still on their way take nothing back. A client need not send CopyDone or CopyFail after the
   * server's error (pg-copy-streams does not).
   */
  copyInEnded(): void {
    this.copyInAnnounced = false;
    this.copyingIn = false;
  }

  /** True when every byte accepted so far belongs to a whole message: a message may be added here. */
  get atBoundary(): boolean {
    return this.remaining === 0 && this.headerFill === 0 && this.packet === null;
  }

  /** True once the client has sent Terminate. */
  get sawTerminate(): boolean {
    return this.terminated;
  }

  push(chunk: Uint8Array): FrontendEvent[] {
    const events: FrontendEvent[] = [];
    let pos = 0;
    while (this.phase === 'startup' && pos < chunk.length) pos = this.pushStartup(chunk, pos, events);
    if (this.phase === 'normal' && pos < chunk.length) this.pushNormal(chunk, pos, events);
    return events;
  }

  private refuse(error: BridgeError, events: FrontendEvent[]): void {
    this.phase = 'ended';
    events.push({ type: 'refused', error });
  }

  private pushStartup(chunk: Uint8Array, pos: number, events: FrontendEvent[]): number {
    if (this.packet === null) {
      const take = Math.min(STARTUP_LENGTH_BYTES - this.headerFill, chunk.length - pos);
      this.header.set(chunk.subarray(pos, pos + take), this.headerFill);
      this.headerFill += take;
      pos += take;
      if (this.headerFill < STARTUP_LENGTH_BYTES) return pos;
      const length = readUint32(this.header, 0);
      if (length < MIN_STARTUP_PACKET_LENGTH || length > MAX_STARTUP_PACKET_LENGTH) {
        if (length === TERMINATE_AS_LENGTH) return this.judgeTerminate(chunk, pos, events);
        this.refuse(new BridgeError('INVALID_STARTUP_LENGTH', 'invalid length of startup packet'), events);
        return chunk.length;
      }
      this.headerFill = 0;
      this.packet = new Uint8Array(length);
      this.packet.set(this.header.subarray(0, STARTUP_LENGTH_BYTES));
      this.packetFill = STARTUP_LENGTH_BYTES;
    }
    const take = Math.min(this.packet.length - this.packetFill, chunk.length - pos);
    this.packet.set(chunk.subarray(pos, pos + take), this.packetFill);
    this.packetFill += take;
    pos += take;
    if (this.packetFill === this.packet.length) {
      const packet = this.packet;
      this.packet = null;
      this.judgeStartupPacket(packet, events);
    }
    return pos;
  }

  /**
   * `X 00 00 00` read as a length: a Terminate (X 00 00 00 04) is a client that ended before it
   * started (pg's `connect(); end()` in one breath), which PostgreSQL lets go without a word, and
   * so does the bridge. Any other fifth byte is garbage like the rest.
   */
  private judgeTerminate(chunk: Uint8Array, pos: number, events: FrontendEvent[]): number {
    if (pos === chunk.length) return pos;
    this.headerFill = 0;
    this.phase = 'ended';
    if (chunk[pos] === MIN_FRAME_LENGTH) events.push({ type: 'left-before-startup' });
    else this.refuse(new BridgeError('INVALID_STARTUP_LENGTH', 'invalid length of startup packet'), events);
    return chunk.length;
  }

  private judgeStartupPacket(packet: Uint8Array, events: FrontendEvent[]): void {
    let decoded;
    try {
      decoded = decodeStartupPacket(packet, { sslDone: this.sslDone, gssDone: this.gssDone });
    } catch (error) {
      if (!(error instanceof BridgeError)) throw error;
      this.refuse(error, events);
      return;
    }
    switch (decoded.kind) {
      case 'ssl-request':
        this.sslDone = true;
        events.push({ type: 'ssl-request' });
        return;
      case 'gssenc-request':
        this.gssDone = true;
        events.push({ type: 'gssenc-request' });
        return;
      case 'cancel-request':
        // The postmaster reads nothing after a CancelRequest; neither do we.
        this.phase = 'ended';
        events.push({ type: 'cancel', packet });
        return;
      case 'startup-message':
        this.phase = 'normal';
        events.push({ type: 'startup', packet, message: decoded.message });
        return;
    }
  }

  private pushNormal(chunk: Uint8Array, pos: number, events: FrontendEvent[]): void {
    if (this.headerFill > 0) {
      const take = Math.min(FRAME_HEADER_LENGTH - this.headerFill, chunk.length - pos);
      this.header.set(chunk.subarray(pos, pos + take), this.headerFill);
      this.headerFill += take;
      pos += take;
      if (this.headerFill < FRAME_HEADER_LENGTH) return;
      this.headerFill = 0;
      const error = this.judgeHeader(this.header, 0);
      if (error) return this.refuse(error, events);
      events.push({ type: 'frames', bytes: this.header.slice() });
    }
    let forwardFrom = pos;
    for (;;) {
      const skip = Math.min(this.remaining, chunk.length - pos);
      pos += skip;
      this.remaining -= skip;
      if (pos === chunk.length) break;
      if (chunk.length - pos < FRAME_HEADER_LENGTH) {
        // Hold a split header back: its frame may yet be refused.
        this.header.set(chunk.subarray(pos), 0);
        this.headerFill = chunk.length - pos;
        break;
      }
      const error = this.judgeHeader(chunk, pos);
      if (error) {
        if (pos > forwardFrom) events.push({ type: 'frames', bytes: chunk.subarray(forwardFrom, pos) });
        return this.refuse(error, events);
      }
      pos += FRAME_HEADER_LENGTH;
    }
    const forwardTo = chunk.length - this.headerFill;
    if (forwardTo > forwardFrom) events.push({ type: 'frames', bytes: chunk.subarray(forwardFrom, forwardTo) });
  }

  /** Checks a frame header at `at`; on success, arms `remaining` with its payload length. */
  private judgeHeader(bytes: Uint8Array, at: number): BridgeError | null {
    const type = bytes[at]!;
    const length = readUint32(bytes, at + 1);
    const max = this.maxLength[type]!;
    if (max === 0) return new BridgeError('INVALID_MESSAGE_TYPE', `invalid frontend message type ${type}`);
    if (length < this.minLength[type]! || length > max) {
      return new BridgeError('INVALID_MESSAGE_LENGTH', 'invalid message length');
    }
    this.remaining = length - MIN_FRAME_LENGTH;
    this.framesJudged += 1;
    if (type === FrontendType.Terminate) this.terminated = true;
    else this.countSyncPoint(type);
    return null;
  }

  private countSyncPoint(type: number): void {
    switch (type) {
      case FrontendType.Query:
      case FrontendType.FunctionCall:
        this.syncPointsJudged += 1;
        this.syncsSinceRequest = 0;
        return;
      case FrontendType.Execute:
        this.syncsSinceRequest = 0;
        return;
      case FrontendType.Sync:
        if (this.copyingIn) return;
        this.syncPointsJudged += 1;
        this.syncsSinceRequest += 1;
        return;
      case FrontendType.CopyData:
      case FrontendType.CopyDone:
      case FrontendType.CopyFail:
        if (this.copyInAnnounced) {
          this.copyInAnnounced = false;
          this.copyingIn = true;
          this.syncPointsJudged -= this.syncsSinceRequest;
          this.syncsSinceRequest = 0;
        }
        if (type !== FrontendType.CopyData) this.copyingIn = false;
    }
  }
}

/**
 * Per-type length bounds, as SocketBackend() (postgres.c) sets them: user data may be large,
 * control messages are small, and Sync, Flush, Terminate and CopyDone carry nothing at all.
 * A maximum of 0 marks a type byte no frontend may send.
 */
/** The tables for each maximum in use, shared by every framer (and session) of the isolate: 2 KiB each. */
const limitTables = new Map<number, { minLength: Uint32Array; maxLength: Uint32Array }>();

function sharedFrameLengthLimits(limits: FramerLimits): { minLength: Uint32Array; maxLength: Uint32Array } {
  let tables = limitTables.get(limits.maxMessageLength);
  if (!tables) limitTables.set(limits.maxMessageLength, (tables = frameLengthLimits(limits)));
  return tables;
}

function frameLengthLimits(limits: FramerLimits): { minLength: Uint32Array; maxLength: Uint32Array } {
  const minLength = new Uint32Array(256);
  const maxLength = new Uint32Array(256);
  const cap = (limit: number) => Math.max(MIN_FRAME_LENGTH, Math.min(limit, limits.maxMessageLength));
  const set = (types: FrontendType[], min: number, max: number) => {
    for (const type of types) {
      minLength[type] = min;
      maxLength[type] = max;
    }
  };
  const large = [
    FrontendType.Bind,
    FrontendType.CopyData,
    FrontendType.FunctionCall,
    FrontendType.Parse,
    FrontendType.Query,
  ];
  set(large, MIN_FRAME_LENGTH, cap(PQ_LARGE_MESSAGE_LIMIT));
  const small = [FrontendType.Close, FrontendType.CopyFail, FrontendType.Describe, FrontendType.Execute];
  set(small, MIN_FRAME_LENGTH, cap(PQ_SMALL_MESSAGE_LIMIT));
  const empty = [FrontendType.CopyDone, FrontendType.Flush, FrontendType.Sync, FrontendType.Terminate];
  set(empty, MIN_FRAME_LENGTH, MIN_FRAME_LENGTH);
  set([FrontendType.PasswordMessage], MIN_FRAME_LENGTH, cap(PG_MAX_AUTH_TOKEN_LENGTH));
  return { minLength, maxLength };
}
