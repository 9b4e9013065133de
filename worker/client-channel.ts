import {
  FlowReceiver,
  FlowSender,
  FROM_CLIENT,
  randomMarkId,
  WINDOW_TO_CLIENT_BYTES,
  WINDOW_TO_SERVER_BYTES,
} from '../common/flow-control.js';
import { echoMessage, markMessage } from '../common/subprotocols.js';
import { timer } from '../common/timer.js';
import { GUARANTEED_SHARE_BYTES } from './isolate-load.js';

/** Largest WebSocket message the bridge sends: server bytes are coalesced up to this size. */
export const RELAY_BUFFER_BYTES = 64 * 1024;
/** At rest, bytes not yet covered by a mark past this get one (the isolate's guaranteed share). */
const MARK_AT_REST_BYTES = GUARANTEED_SHARE_BYTES;
/**
 * Bytes no mark covers get one once MARK_AT_REST_BYTES or more of them wait and nothing more went
 * out for this long (the stream rests), or once the oldest of them went out MAX_UNMARKED_MS ago
 * (a stream that trickles without resting). Not at every pause: PostgreSQL is often briefly slower
 * than the relay mid-stream, and a mark each time would have the client send an echo every few
 * hundred kilobytes instead of every quarter window.
 */
export const REST_MARK_MS = 20;
export const MAX_UNMARKED_MS = 200;

/**
 * Gathering buffers not in use, shared by the isolate's sessions: a session holds one only from
 * its first gathered byte to the flush, so an idle session holds none, and a busy isolate does
 * not allocate 64 KiB for every small answer.
 */
const spareBuffers: Uint8Array[] = [];
const MAX_SPARE_BUFFERS = 16;

/** A buffer of RELAY_BUFFER_BYTES to gather or read into: a spare one, or a new one. */
export function takeBuffer(): Uint8Array {
  return spareBuffers.pop() ?? new Uint8Array(RELAY_BUFFER_BYTES);
}

/** Keeps `buffer` for the next takeBuffer(): one never sent, whole (not detached by a read). */
export function giveBack(buffer: Uint8Array): void {
  if (spareBuffers.length < MAX_SPARE_BUFFERS && buffer.byteLength === RELAY_BUFFER_BYTES) spareBuffers.push(buffer);
}

/**
 * The session's WebSocket to its client, and the flow-control accounting of both directions on
 * it. Every binary byte the bridge sends goes through here and is counted (the `N` answers to
 * SSLRequest too), so the client's echoes always refer to bytes this side knows it sent.
 * Without flow control there is nothing to count against: sends go out as they come.
 */
export class ClientChannel {
  /** Server bytes waiting to go out as one message: the first `bufferedBytes` of `gathering`. */
  private gathering: Uint8Array | null = null;
  private bufferedBytes = 0;
  private open = true;
  /** Toward the client: what it has proven it received. */
  readonly toClient: FlowSender | null;
  /** From the client: what it may send before this side echoes. */
  readonly fromClient: FlowReceiver | null;
  /** Binary bytes sent to the client. */
  bytesSent = 0;
  /** Marks bytes no mark covers once the stream rests (REST_MARK_MS); runs while they wait. */
  private readonly restMark = timer(REST_MARK_MS, () => this.onRestMarkTimer());
  /** bytesSent when the rest-mark timer was last started: more since, and the stream goes on. */
  private sentAtRestLook = 0;
  /** When the oldest byte no mark covers went out. */
  private unmarkedSince = 0;

  constructor(
    private readonly ws: WebSocket,
    flowControl: boolean,
    windowToClient = WINDOW_TO_CLIENT_BYTES,
  ) {
    this.toClient = flowControl ? new FlowSender(windowToClient, randomMarkId) : null;
    this.fromClient = flowControl ? new FlowReceiver(WINDOW_TO_SERVER_BYTES, FROM_CLIENT) : null;
  }

  /** Server bytes held here: gathered for the next message, and sent but not proven received. */
  get heldBytes(): number {
    return this.bufferedBytes + (this.toClient?.unacknowledged ?? 0);
  }

  get isEmpty(): boolean {
    return this.bufferedBytes === 0;
  }

  get buffered(): number {
    return this.bufferedBytes;
  }

  /** Bytes the message being gathered can still take before it goes out full. */
  get messageRoom(): number {
    return RELAY_BUFFER_BYTES - this.bufferedBytes;
  }

  /** Bytes the window lets the relay read from PostgreSQL now (no limit without flow control). */
  get room(): number {
    return this.toClient === null ? Infinity : Math.max(0, this.toClient.window - this.heldBytes);
  }

  /**
   * Copies server bytes into the message being gathered (the caller may reuse `chunk` at once);
   * a message that fills up on the way goes out whole, at RELAY_BUFFER_BYTES. `given`: the caller
   * gives up `chunk`'s memory, and it never reads or writes it again. A chunk so given that fills
   * a buffer of RELAY_BUFFER_BYTES of its own, while nothing is gathered, is a full message
   * already: it goes out as it is, not copied.
   */
  add(chunk: Uint8Array, given = false): void {
    if (given && this.bufferedBytes === 0 && isWholeBuffer(chunk)) {
      this.sendBinary(chunk);
      return;
    }
    let pos = 0;
    while (pos < chunk.length) {
      const buffer = (this.gathering ??= takeBuffer());
      const take = Math.min(chunk.length - pos, buffer.length - this.bufferedBytes);
      buffer.set(pos === 0 && take === chunk.length ? chunk : chunk.subarray(pos, pos + take), this.bufferedBytes);
      this.bufferedBytes += take;
      pos += take;
      if (this.bufferedBytes === buffer.length) this.flush();
    }
  }

  /** Sends what was gathered as one message. */
  flush(): void {
    const buffer = this.gathering;
    if (buffer === null || this.bufferedBytes === 0) return;
    const length = this.bufferedBytes;
    this.bufferedBytes = 0;
    this.gathering = null;
    // workerd's send() keeps a reference to the bytes until they are written, so a buffer once
    // sent is never written again. A full one goes as it is; a shorter message goes as a copy and
    // its buffer gathers the next: a view would keep all 64 KiB alive while the window counts
    // only its length (8 MiB of 8 KiB messages would pin 64 MiB).
    if (length === buffer.length) {
      this.sendBinary(buffer);
    } else {
      this.sendBinary(buffer.slice(0, length));
      giveBack(buffer);
    }
  }

  /**
   * Sends what was gathered where the stream comes to rest at a message the client must act on,
   * and a mark when MARK_AT_REST_BYTES or more went out since the last one: marks otherwise come a
   * quarter window apart (or when the rest-mark timer finds the stream resting), and bytes no mark
   * covers stay counted as held, against the isolate's budget, until one does.
   */
  flushAtRest(): void {
    this.flush();
    if (this.toClient && this.toClient.unmarked >= MARK_AT_REST_BYTES) this.markAll();
  }

  /**
   * REST_MARK_MS after the timer started: a mark if the stream rested or trickled too long, else
   * look again. Not while the window is full and an echo is due: the relay waits for it, and looks
   * again once it wakes (resumed()).
   */
  private onRestMarkTimer(): void {
    const toClient = this.toClient;
    if (!this.open || !toClient || toClient.unmarked < MARK_AT_REST_BYTES) return;
    if (toClient.room === 0 && toClient.awaitingEcho && toClient.unmarked < toClient.window) return;
    if (this.bytesSent === this.sentAtRestLook || Date.now() - this.unmarkedSince >= MAX_UNMARKED_MS) {
      this.markAll();
      return;
    }
    this.sentAtRestLook = this.bytesSent;
    this.restMark.start();
  }

  /** Sends `bytes` after whatever was gathered, at once. */
  sendNow(bytes: Uint8Array): void {
    this.flush();
    this.sendBinary(bytes);
  }

  /** The relay woke from waiting for room: bytes left unmarked while it waited are watched again. */
  resumed(): void {
    if (this.open) this.watchUnmarked();
  }

  /** The window toward the client from here on (IsolateLoad.windowToClient decides it). */
  setWindow(bytes: number): void {
    this.toClient?.resize(bytes);
  }

  /**
   * Before the relay waits. For a full window, nothing as long as a mark is out whose echo reopens
   * it (marks come a quarter window apart), but a window that shrank may be full of bytes sent since
   * the last mark. Over the isolate's budget, the session must come down to its share: a mark
   * covering everything sent, so that one echo can free all of it.
   */
  markBeforeWaiting(overBudget: boolean): void {
    const toClient = this.toClient;
    if (!toClient) return;
    // After every echo there is to come, the unmarked bytes alone would still fill the window.
    const echoesCannotReopen = !toClient.awaitingEcho || toClient.unmarked >= toClient.window;
    if (overBudget || toClient.room > 0 || echoesCannotReopen) this.markAll();
  }

  /** A mark covering everything sent, so that its echo can free all of it. */
  private markAll(): void {
    const id = this.toClient?.markAll();
    if (id) this.sendText(markMessage(id));
  }

  /** Echoes the client's marks whose bytes are all consumed. */
  echoConsumed(): void {
    const id = this.fromClient?.takeEcho();
    if (id) this.sendText(echoMessage(id));
  }

  /** Nothing more leaves once the session is closed. */
  close(code: number, reason: string): void {
    if (!this.open) return;
    this.open = false;
    this.restMark.dispose();
    if (this.gathering) giveBack(this.gathering);
    this.gathering = null;
    this.bufferedBytes = 0;
    safely(() => this.ws.close(code, reason));
  }

  private sendBinary(message: Uint8Array): void {
    if (!this.open) return;
    const toClient = this.toClient;
    if (toClient && toClient.unmarked === 0) this.unmarkedSince = Date.now();
    safely(() => this.ws.send(message));
    this.bytesSent += message.length;
    if (!toClient) return;
    const id = toClient.count(message.length);
    if (id) this.sendText(markMessage(id));
    else this.watchUnmarked();
  }

  /** Starts the rest-mark timer when MARK_AT_REST_BYTES or more wait unmarked and it is not running. */
  private watchUnmarked(): void {
    const toClient = this.toClient;
    if (!toClient || toClient.unmarked < MARK_AT_REST_BYTES || this.restMark.running) return;
    this.sentAtRestLook = this.bytesSent;
    this.restMark.start();
  }

  private sendText(text: string): void {
    if (this.open) safely(() => this.ws.send(text));
  }
}

function isWholeBuffer(chunk: Uint8Array): boolean {
  return (
    chunk.length === RELAY_BUFFER_BYTES && chunk.byteOffset === 0 && chunk.buffer.byteLength === RELAY_BUFFER_BYTES
  );
}

/** WebSocket calls throw once the peer is gone; at that point there is no one left to tell. */
function safely(action: () => void): void {
  try {
    action();
  } catch {
    // The client is already gone.
  }
}
