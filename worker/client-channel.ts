import {
  FlowReceiver,
  FlowSender,
  randomMarkId,
  WINDOW_TO_CLIENT_BYTES,
  WINDOW_TO_SERVER_BYTES,
} from '../common/flow-control.js';
import { echoMessage, markMessage } from '../common/subprotocols.js';
import { concatBytes } from './protocol/bytes.js';

/** Largest WebSocket message the bridge sends: server bytes are coalesced up to this size. */
export const RELAY_BUFFER_BYTES = 64 * 1024;

/**
 * The session's WebSocket to its client, and the flow-control accounting of both directions on
 * it. Every binary byte the bridge sends goes through here and is counted (the `N` answers to
 * SSLRequest too), so the client's echoes always refer to bytes this side knows it sent.
 * Without flow control there is nothing to count against: sends go out as they come.
 */
export class ClientChannel {
  /** Server bytes waiting to go out as one message. */
  private chunks: Uint8Array[] = [];
  private bufferedBytes = 0;
  private open = true;
  /** Toward the client: what it has proven it received. */
  readonly toClient: FlowSender | null;
  /** From the client: what it may send before this side echoes. */
  readonly fromClient: FlowReceiver | null;
  /** Binary bytes sent to the client. */
  bytesSent = 0;

  constructor(
    private readonly ws: WebSocket,
    flowControl: boolean,
  ) {
    this.toClient = flowControl ? new FlowSender(WINDOW_TO_CLIENT_BYTES, randomMarkId) : null;
    this.fromClient = flowControl ? new FlowReceiver(WINDOW_TO_SERVER_BYTES) : null;
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

  /** Whether the window lets the relay read more from PostgreSQL (always, without flow control). */
  get hasRoom(): boolean {
    return this.toClient === null || this.heldBytes < this.toClient.window;
  }

  /** Adds server bytes to the next message. */
  add(chunk: Uint8Array): void {
    this.chunks.push(chunk);
    this.bufferedBytes += chunk.length;
  }

  /** Sends what was gathered as one message. */
  flush(): void {
    if (this.bufferedBytes === 0) return;
    const message = concatBytes(...this.chunks);
    this.chunks = [];
    this.bufferedBytes = 0;
    this.sendBinary(message);
  }

  /** Sends `bytes` after whatever was gathered, at once. */
  sendNow(bytes: Uint8Array): void {
    this.flush();
    this.sendBinary(bytes);
  }

  /** Before waiting for the client: a mark covering everything sent, so its echo can open the window fully. */
  markAll(): void {
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
    this.chunks = [];
    this.bufferedBytes = 0;
    safely(() => this.ws.close(code, reason));
  }

  private sendBinary(message: Uint8Array): void {
    if (!this.open) return;
    safely(() => this.ws.send(message));
    this.bytesSent += message.length;
    const id = this.toClient?.count(message.length);
    if (id) this.sendText(markMessage(id));
  }

  private sendText(text: string): void {
    if (this.open) safely(() => this.ws.send(text));
  }
}

/** WebSocket calls throw once the peer is gone; at that point there is no one left to tell. */
function safely(action: () => void): void {
  try {
    action();
  } catch {
    // The client is already gone.
  }
}
