import { encodeBase64Url } from './subprotocols.js';

/**
 * Window accounting for flow control, the same in both directions: the client socket sends to
 * the bridge as the bridge sends to the client. Pure: it counts numbers and says what to send.
 *
 * The sender counts the binary bytes it sends and, every quarter window (and before it rests or
 * waits on more than its window), sends a mark (a text message, subprotocols.ts) counting
 * everything sent before it. The receiver echoes a mark once it has consumed every byte before
 * it: handed it to the driver, or written it to PostgreSQL. The sender keeps at most its window
 * past the last echoed mark.
 *
 * A mark travels behind the bytes it counts, and the bridge's mark ids are random, so an echo
 * proves that the bytes before the mark left the sender: a client can lie about having consumed
 * them, never about having received them. That is what bounds the bridge's memory: workerd's
 * WebSocket send() never blocks and has no bufferedAmount, so bytes a client does not read would
 * otherwise pile up in the Worker.
 */

/** Bytes the client may send past the bridge's last echo: PostgreSQL-bound bytes the Worker may hold. */
export const WINDOW_TO_SERVER_BYTES = 256 * 1024;
/**
 * Bytes the bridge may send past the client's last echo, at most: result bytes the Worker may hold
 * for one session. It must cover what is in flight while an echo comes back: bytes workerd has
 * queued and not yet written (a mark's echo waits for all of them), the network, and the client's
 * backlog. A session has this much while its isolate has room, and less as other sessions hold
 * theirs, down to WINDOW_TO_CLIENT_FLOOR_BYTES (IsolateLoad.windowToClient): the isolate's budget,
 * not this, bounds what all sessions hold together. The client does not enforce it, so a bridge
 * may change it alone.
 */
export const WINDOW_TO_CLIENT_BYTES = 24 * 1024 * 1024;
/**
 * The window toward the client every session keeps, however loaded its isolate (or the deployment's
 * window, if smaller). At 1 MiB the bridge paused for echoes (0.64–0.81× a blind relay on 1 KB
 * rows); at 8 MiB it keeps pace there. A larger window also means fewer marks, each an echo the
 * client must send: on large results the bridge at 8 MiB ran a few percent behind a relay that
 * holds all it has not sent (README, Benchmark).
 */
export const WINDOW_TO_CLIENT_FLOOR_BYTES = 8 * 1024 * 1024;
/** Marks at least this often, in window quarters, so an echo arrives long before the window closes. */
const MARKS_PER_WINDOW = 4;
/**
 * An honest sender has at most MARKS_PER_WINDOW marks in its window, plus one before it rests or
 * waits and one on the edge: more outstanding marks are a sender growing the receiver's list on
 * purpose.
 */
export const MAX_OUTSTANDING_MARKS = MARKS_PER_WINDOW + 2;

interface Mark {
  readonly id: string;
  /** Bytes sent before the mark, counted from the start of the session. */
  readonly at: number;
  /** Messages sent before the mark, likewise. */
  readonly messages: number;
}

/**
 * Messages a client may send past the bridge's last echo (binary ones, and keepalives). Its window
 * counts bytes, but workerd spends far more than a byte on each message it takes in: a window's
 * worth of one-byte messages grew it by about 250 MiB. The client socket keeps to half of this for
 * its binary messages, so the few text messages it sends on its own always fit.
 */
export const MESSAGE_WINDOW_TO_SERVER = 4096;
/** The client socket's own limit on binary messages past the bridge's last echo. */
export const CLIENT_MESSAGE_WINDOW = MESSAGE_WINDOW_TO_SERVER / 2;

/** The sending side of one direction. */
export class FlowSender {
  private windowBytes: number;
  private markEvery: number;
  private sent = 0;
  private echoedAt = 0;
  private lastMarkAt = 0;
  private messages = 0;
  private echoedMessages = 0;
  private lastMarkMessages = 0;
  private readonly marks: Mark[] = [];
  private readonly markEveryMessages: number;

  /** `messageWindow`: messages it may send past the last echo, too (the client's, toward the bridge). */
  constructor(
    window: number,
    private readonly nextId: () => string,
    private readonly messageWindow = Infinity,
  ) {
    this.windowBytes = window;
    this.markEvery = window / MARKS_PER_WINDOW;
    this.markEveryMessages = messageWindow / MARKS_PER_WINDOW;
  }

  /** Bytes it may send past the last echo. */
  get window(): number {
    return this.windowBytes;
  }

  /**
   * A new window, and marks a quarter of it apart from here on. Bytes already sent past a smaller
   * window stay sent: nothing more goes until echoes bring them under it.
   */
  resize(window: number): void {
    this.windowBytes = window;
    this.markEvery = window / MARKS_PER_WINDOW;
  }

  /** Whether a mark is out that the receiver has not echoed yet: its echo will free bytes. */
  get awaitingEcho(): boolean {
    return this.marks.length > 0;
  }

  /** Bytes sent and not yet covered by an echoed mark. */
  get unacknowledged(): number {
    return this.sent - this.echoedAt;
  }

  /** Bytes covered by echoed marks, counted from the start: what the receiver proved it received. */
  get acknowledged(): number {
    return this.echoedAt;
  }

  /** Bytes sent after the last mark: no echo can cover them until another mark follows. */
  get unmarked(): number {
    return this.sent - this.lastMarkAt;
  }

  /** How many more bytes may be sent now (none while the message window is full). */
  get room(): number {
    if (this.messages - this.echoedMessages >= this.messageWindow) return 0;
    return Math.max(0, this.windowBytes - this.unacknowledged);
  }

  /**
   * Counts `bytes` as sent; returns the id of a mark to send right after them, or null. Marks come
   * every quarter window, so whenever the window is full a mark is out whose echo reopens it: a
   * full window needs no mark of its own (each echo costs the receiver a message to send).
   */
  count(bytes: number): string | null {
    this.sent += bytes;
    this.messages += 1;
    const due =
      this.sent - this.lastMarkAt >= this.markEvery || this.messages - this.lastMarkMessages >= this.markEveryMessages;
    return due ? this.mark() : null;
  }

  /** A mark covering everything sent so far, unless the last one does already: for a sender about to rest. */
  markAll(): string | null {
    return this.sent > this.lastMarkAt ? this.mark() : null;
  }

  /** The receiver echoed `id`. False when no outstanding mark has that id: the receiver made it up. */
  echoed(id: string): boolean {
    const index = this.marks.findIndex((mark) => mark.id === id);
    if (index === -1) return false;
    this.echoedAt = this.marks[index]!.at;
    this.echoedMessages = this.marks[index]!.messages;
    this.marks.splice(0, index + 1);
    return true;
  }

  private mark(): string {
    const id = this.nextId();
    this.marks.push({ id, at: this.sent, messages: this.messages });
    this.lastMarkAt = this.sent;
    this.lastMarkMessages = this.messages;
    return id;
  }
}

/**
 * How the bridge takes a client's flow control. It echoes a client's marks only as they free a
 * quarter of the client's window, in bytes or in messages (the client socket marks that far
 * apart): each echo is a message the bridge sends whether or not the client reads, so a client
 * marking every few bytes must not get one for each.
 */
export const FROM_CLIENT = {
  minEcho: WINDOW_TO_SERVER_BYTES / MARKS_PER_WINDOW,
  minEchoMessages: CLIENT_MESSAGE_WINDOW / MARKS_PER_WINDOW,
  messageWindow: MESSAGE_WINDOW_TO_SERVER,
} as const;

/** The receiving side of one direction. */
export class FlowReceiver {
  private received = 0;
  private consumed = 0;
  private echoedAt = 0;
  private lastMarkAt = 0;
  /** The newest mark whose bytes are all consumed, not echoed yet (it frees too little). */
  private consumedMark: Mark | null = null;
  private readonly marks: Mark[] = [];

  private messages = 0;
  private echoedMessages = 0;
  private readonly minEcho: number;
  private readonly minEchoMessages: number;
  private readonly messageWindow: number;

  /**
   * Without options, every consumed mark is echoed and only bytes are counted. The bridge, toward
   * an untrusted client, echoes only marks that free `minEcho` bytes or `minEchoMessages`
   * messages, and refuses a sender past `messageWindow` messages (binary ones and keepalives).
   */
  constructor(
    readonly window: number,
    options: { minEcho?: number; minEchoMessages?: number; messageWindow?: number } = {},
  ) {
    this.minEcho = options.minEcho ?? 0;
    this.minEchoMessages = options.minEchoMessages ?? 0;
    this.messageWindow = options.messageWindow ?? Infinity;
  }

  /** Bytes received and not yet covered by a mark this side echoed. */
  get unacknowledged(): number {
    return this.received - this.echoedAt;
  }

  /** `bytes` arrived. False when the sender went past its window: it is not to be trusted to stop. */
  receive(bytes: number): boolean {
    this.received += bytes;
    return this.keepalive() && this.unacknowledged <= this.window;
  }

  /** A message that carries no bytes arrived (a keepalive): it counts against the message window too. */
  keepalive(): boolean {
    this.messages += 1;
    return this.messages - this.echoedMessages <= this.messageWindow;
  }

  /**
   * Bytes received since the newest mark (outstanding or echoed): what a mark arriving now covers.
   * An honest sender marks only after sending, so never a mark that covers nothing.
   */
  get unmarked(): number {
    return this.received - this.lastMarkAt;
  }

  /** A mark arrived. False when the sender has more outstanding than an honest one can have. */
  mark(id: string): boolean {
    if (this.marks.length >= MAX_OUTSTANDING_MARKS) return false;
    this.marks.push({ id, at: this.received, messages: this.messages });
    this.lastMarkAt = this.received;
    return true;
  }

  /**
   * A mark arrived from a sender this side trusts (the client, from the bridge): past the cap, it
   * takes the place of the newest outstanding one, whose bytes it covers. Dropping it instead could
   * leave the sender waiting for an echo of the one mark that covers everything it sent.
   */
  markLatest(id: string): void {
    if (this.marks.length >= MAX_OUTSTANDING_MARKS) this.marks.pop();
    this.marks.push({ id, at: this.received, messages: this.messages });
    this.lastMarkAt = this.received;
  }

  /** `bytes` more were consumed (negative to take back bytes counted early). */
  consume(bytes: number): void {
    this.consumed += bytes;
  }

  /**
   * The id of the last mark whose bytes are all consumed, to echo now; null when there is none
   * new, or when it would free less than `minEcho` (it stays the one to echo, until a later one
   * takes its place). Consumed marks no longer count as outstanding either way.
   */
  takeEcho(): string | null {
    while (this.marks.length > 0 && this.marks[0]!.at <= this.consumed) this.consumedMark = this.marks.shift()!;
    const echo = this.consumedMark;
    if (echo === null) return null;
    const freesEnough =
      echo.at - this.echoedAt >= this.minEcho ||
      (this.minEchoMessages > 0 && echo.messages - this.echoedMessages >= this.minEchoMessages);
    if (!freesEnough) return null;
    this.consumedMark = null;
    this.echoedAt = echo.at;
    this.echoedMessages = echo.messages;
    return echo.id;
  }
}

/** Random mark ids, for a sender whose receiver must not guess them (the bridge). */
export function randomMarkId(): string {
  return encodeBase64Url(crypto.getRandomValues(new Uint8Array(9)));
}

/** Counting mark ids, for a sender whose receiver has nothing to gain by guessing (the client). */
export function countingMarkIds(): () => string {
  let next = 0;
  return () => (next++).toString(36);
}
