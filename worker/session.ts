import type { BridgeConfig, MetricsDataset } from './config.js';
import { edgeLogin } from './edge-login.js';
import { checkStartup, chooseRole, withRole, type Claims, type EdgeLogin } from './policy/startup-policy.js';
import type { Target } from './policy/targets.js';
import { sessionDataPoint } from './metrics.js';
import { ConnectTimeout, openPostgresSocket, withTimeout, type PostgresSocket } from './postgres-socket.js';
import { BackendBoundaries } from './protocol/backend-boundaries.js';
import { concatBytes } from './protocol/bytes.js';
import { BackendType, CloseCode, ENCRYPTION_REFUSED } from './protocol/constants.js';
import { encodeFatalError } from './protocol/error-response.js';
import { BridgeError } from './protocol/errors.js';
import { FrontendFramer, type FrontendEvent } from './protocol/frontend-framer.js';
import { TERMINATE } from './protocol/requests.js';
import { encodeStartupMessage } from './protocol/startup.js';
import { FLOW_ACK_BYTES, FLOW_WINDOW_BYTES, parseAck } from './protocol/subprotocols.js';

/** How long closing waits for writes still queued toward PostgreSQL. */
const CLOSE_GRACE_MS = 1000;

/** Largest WebSocket message the bridge sends: server bytes are coalesced up to this size. */
export const RELAY_BUFFER_BYTES = 64 * 1024;

const ENCRYPTION_REFUSED_REPLY = new Uint8Array([ENCRYPTION_REFUSED]);

export interface SessionOptions {
  /** The PostgreSQL server this session relays to. */
  readonly target: Target;
  /** Set when the session is refused before it starts (a target not allowed). */
  readonly refusal?: BridgeError;
  /** Whether the client takes part in flow control (see protocol/subprotocols.ts). */
  readonly flowControl?: boolean;
  /** Claims of the token the client presented, when tokens are checked. */
  readonly claims?: Claims | null;
  readonly metrics?: MetricsDataset | undefined;
  readonly log?: (line: string) => void;
}

/** What one session did, logged once when it ends. Never passwords, tokens or query text. */
interface SessionRecord {
  startedAt: number;
  user: string | null;
  database: string | null;
  subject: string | null;
  bytesToServer: number;
  bytesToClient: number;
}

/**
 * One client's bridge: reads the startup phase from the WebSocket, opens PostgreSQL only for a
 * valid StartupMessage, then relays both ways, framing and checking every client message.
 * Whichever side ends, the other is ended too.
 */
export class BridgeSession {
  private readonly framer: FrontendFramer;
  private state: 'startup' | 'connecting' | 'relaying' | 'closed' = 'startup';
  private postgres: PostgresSocket | null = null;
  /** Client bytes accepted while PostgreSQL is still being connected to. */
  private pending: Uint8Array[] = [];
  private readonly boundaries = new BackendBoundaries();
  private readonly startupTimer: ReturnType<typeof setTimeout>;
  /** Server bytes on their way to the client; nothing leaves once the session is closed. */
  private readonly toClient = new OutgoingBuffer((message) => {
    if (this.state !== 'closed') safely(() => this.ws.send(message));
    this.unacknowledged += message.length;
    this.record.bytesToClient += message.length;
  });
  private readonly flowControl: boolean;
  private readonly claims: Claims | null;
  private readonly log: (line: string) => void;
  private readonly record: SessionRecord;
  private lastActivity = Date.now();
  private idleTimer: ReturnType<typeof setTimeout> | null = null;
  private sessionTimer: ReturnType<typeof setTimeout> | null = null;
  /** Bytes sent to the client that it has not yet said it handed to its driver (flow control only). */
  private unacknowledged = 0;
  private windowOpened: (() => void) | null = null;
  /** Client bytes PostgreSQL accepted since the last acknowledgement to the client (flow control only). */
  private acceptedSinceAck = 0;

  constructor(
    private readonly ws: WebSocket,
    private readonly config: BridgeConfig,
    private readonly options: SessionOptions,
  ) {
    this.flowControl = options.flowControl ?? false;
    this.claims = options.claims ?? null;
    this.log = options.log ?? ((line) => console.log(line));
    const subject = this.claims?.sub;
    this.record = {
      startedAt: Date.now(),
      user: null,
      database: null,
      subject: typeof subject === 'string' ? subject : null,
      bytesToServer: 0,
      bytesToClient: 0,
    };
    this.framer = new FrontendFramer({ maxMessageLength: config.maxMessageBytes });
    // A client that never completes its startup packet would hold the session open forever.
    this.startupTimer = setTimeout(() => {
      this.refuse(new BridgeError('INCOMPLETE_STARTUP', 'incomplete startup packet'));
    }, config.startupTimeoutMs);
    ws.addEventListener('message', (event) => this.onClientMessage(event.data));
    ws.addEventListener('close', () => this.onClientGone());
    ws.addEventListener('error', () => this.onClientGone());
    if (options.refusal) this.refuse(options.refusal);
  }

  private onClientMessage(data: ArrayBuffer | string): void {
    if (this.state === 'closed') return;
    if (typeof data === 'string') {
      this.onTextMessage(data);
      return;
    }
    this.lastActivity = Date.now();
    for (const event of this.framer.push(new Uint8Array(data))) this.onFrontendEvent(event);
  }

  /** Text messages carry flow-control acknowledgements and keepalives, and nothing else. */
  private onTextMessage(text: string): void {
    if (!this.flowControl) {
      this.refuse(new BridgeError('TEXT_MESSAGE', 'the bridge accepts only binary WebSocket messages'));
      return;
    }
    const bytes = parseAck(text);
    if (bytes === null || bytes > this.unacknowledged) {
      this.refuse(new BridgeError('INVALID_ACK', 'invalid flow-control acknowledgement'));
      return;
    }
    if (bytes === 0) return; // a keepalive: the WebSocket is in use, the session not necessarily
    this.lastActivity = Date.now();
    this.unacknowledged -= bytes;
    if (this.unacknowledged < FLOW_WINDOW_BYTES) this.openWindow();
  }

  private openWindow(): void {
    const opened = this.windowOpened;
    this.windowOpened = null;
    opened?.();
  }

  /** Resolves once the client has acknowledged enough to send more, or the session closed. */
  private windowOpen(): Promise<void> | null {
    if (!this.flowControl || this.unacknowledged < FLOW_WINDOW_BYTES || this.state === 'closed') return null;
    return new Promise((resolve) => (this.windowOpened = resolve));
  }

  private onFrontendEvent(event: FrontendEvent): void {
    switch (event.type) {
      case 'ssl-request':
      case 'gssenc-request':
        // The client's link is already wss://; encryption inside it would buy nothing.
        this.ws.send(ENCRYPTION_REFUSED_REPLY);
        return;
      case 'startup': {
        clearTimeout(this.startupTimer);
        const login = chooseRole(this.config, this.claims);
        if (login instanceof BridgeError) return this.refuse(login);
        const message = login ? withRole(event.message, login.role) : event.message;
        this.record.user = message.user;
        this.record.database = message.database;
        const refusal = checkStartup(message, this.config, this.claims);
        if (refusal) return this.refuse(refusal);
        const packet = login
          ? encodeStartupMessage(message.majorVersion, message.minorVersion, message.parameters)
          : event.packet;
        void this.connect(packet, login);
        return;
      }
      case 'cancel':
        clearTimeout(this.startupTimer);
        void this.forwardCancel(event.packet);
        return;
      case 'frames':
        this.toServer(event.bytes);
        return;
      case 'refused':
        this.refuse(event.error);
        return;
    }
  }

  private toServer(bytes: Uint8Array): void {
    this.record.bytesToServer += bytes.length;
    if (!this.postgres) {
      this.pending.push(bytes);
      return;
    }
    this.postgres.writer.write(bytes).then(
      () => this.acceptedByServer(bytes.length),
      (error) => this.onServerFailure(error),
    );
  }

  /** With flow control, tells the client every FLOW_ACK_BYTES what PostgreSQL has accepted. */
  private acceptedByServer(bytes: number): void {
    if (!this.flowControl || this.state === 'closed') return;
    this.acceptedSinceAck += bytes;
    if (this.acceptedSinceAck < FLOW_ACK_BYTES) return;
    safely(() => this.ws.send(String(this.acceptedSinceAck)));
    this.acceptedSinceAck = 0;
  }

  private async connect(startupPacket: Uint8Array, login: EdgeLogin | null): Promise<void> {
    this.state = 'connecting';
    let postgres: PostgresSocket;
    let afterLogin: Uint8Array | null = null;
    try {
      postgres = await openPostgresSocket(this.config, this.options.target, startupPacket, (line) => this.log(line));
    } catch (error) {
      this.refuse(asBridgeError(error));
      return;
    }
    if (login) {
      try {
        afterLogin = await withTimeout(edgeLogin(postgres, login.password), this.config.connectTimeoutMs);
      } catch (error) {
        postgres.close();
        this.refuse(
          error instanceof ConnectTimeout
            ? new BridgeError('SERVER_UNREACHABLE', 'the database server did not finish authentication in time')
            : asBridgeError(error),
        );
        return;
      }
    }
    if (this.isClosed()) {
      postgres.close();
      return;
    }
    this.state = 'relaying';
    this.postgres = postgres;
    this.record.bytesToServer += startupPacket.length;
    this.startLimits();
    // What PostgreSQL said after the bridge's own login (AuthenticationOk on) goes to the client first.
    if (afterLogin) {
      this.boundaries.scan(afterLogin);
      this.toClient.add(afterLogin);
      this.toClient.flush();
    }
    for (const bytes of this.pending) this.toServer(bytes);
    this.pending = [];
    void this.relayFromServer(postgres);
  }

  /** CancelRequest goes on its own connection, and PostgreSQL answers it by closing. */
  private async forwardCancel(packet: Uint8Array): Promise<void> {
    this.state = 'connecting';
    try {
      const postgres = await openPostgresSocket(this.config, this.options.target, packet, (line) => this.log(line));
      postgres.close();
      this.close(CloseCode.Normal, 'cancel request sent');
    } catch (error) {
      this.refuse(asBridgeError(error));
    }
  }

  /**
   * PostgreSQL → client. TCP reads come in chunks of at most 4 KiB; sending each as its own
   * WebSocket message would cost a message per 4 KiB, so chunks are gathered into one message
   * until a message the client must act on ends them (ReadyForQuery, an auth request, …),
   * RELAY_BUFFER_BYTES are gathered, or the next read does not complete within one event-loop turn.
   */
  private async relayFromServer(postgres: PostgresSocket): Promise<void> {
    const outgoing = this.toClient;
    try {
      for (;;) {
        // Not reading lets TCP push back on PostgreSQL while the client catches up.
        const window = this.windowOpen();
        if (window) {
          outgoing.flush();
          await window;
          if (this.state === 'closed') break;
        }
        const read = postgres.reader.read();
        let result = outgoing.isEmpty ? await read : await raceNextTurn(read);
        if (result === NEXT_TURN) {
          outgoing.flush();
          result = await read;
        }
        if (result.done || this.state === 'closed') break;
        this.lastActivity = Date.now();
        const urgent = this.boundaries.scan(result.value);
        outgoing.add(result.value);
        if (urgent || outgoing.size >= RELAY_BUFFER_BYTES) outgoing.flush();
      }
      outgoing.flush();
    } catch (error) {
      if (this.state !== 'closed') this.log(`read from PostgreSQL failed: ${String(error)}`);
    }
    this.onServerEnd();
  }

  /** PostgreSQL closed its side: pass on its last word, or say the connection was lost. */
  private onServerEnd(): void {
    if (this.state === 'closed') return;
    const endedWithError = this.boundaries.atBoundary && this.boundaries.lastMessageType === BackendType.ErrorResponse;
    if (endedWithError || this.framer.sawTerminate) {
      this.close(CloseCode.Normal, 'server closed the connection');
      return;
    }
    this.refuse(new BridgeError('SERVER_CONNECTION_LOST', 'server closed the connection unexpectedly'));
  }

  private onServerFailure(error: unknown): void {
    if (this.state === 'closed') return;
    this.log(`write to PostgreSQL failed: ${String(error)}`);
    this.refuse(new BridgeError('SERVER_CONNECTION_LOST', 'connection to the database server was lost'));
  }

  /**
   * Ends the session as PostgreSQL ends one it refuses: a FATAL ErrorResponse, then close. Server
   * bytes already read go first; the ErrorResponse follows only where it lands between two whole
   * server messages, since one in the middle of another would garble the client's stream.
   */
  private refuse(error: BridgeError): void {
    if (this.state === 'closed') return;
    this.toClient.flush();
    if (this.boundaries.atBoundary) safely(() => this.ws.send(encodeFatalError(error)));
    this.close(error.closeCode, error.code);
  }

  /** Idle and session-length limits, each ending the session as PostgreSQL ends one it times out. */
  private startLimits(): void {
    const { idleTimeoutMs, maxSessionMs } = this.config;
    if (maxSessionMs > 0) {
      this.sessionTimer = setTimeout(() => {
        this.refuse(
          new BridgeError('SESSION_TOO_LONG', 'terminating connection: the session reached its maximum length'),
        );
      }, maxSessionMs);
    }
    if (idleTimeoutMs > 0) {
      // Re-armed at timeout granularity, not per message: the hot path only stores a timestamp.
      const check = () => {
        const idleFor = Date.now() - this.lastActivity;
        if (idleFor >= idleTimeoutMs) {
          this.refuse(new BridgeError('IDLE_TIMEOUT', 'terminating connection due to idle-session timeout'));
        } else {
          this.idleTimer = setTimeout(check, idleTimeoutMs - idleFor);
        }
      };
      this.idleTimer = setTimeout(check, idleTimeoutMs);
    }
  }

  /** One structured line per session, and counters when an Analytics Engine dataset is bound. */
  private report(code: number, reason: string): void {
    const r = this.record;
    const line = {
      event: 'pgwire-bridge.session',
      target: `${this.options.target.host}:${this.options.target.port}`,
      user: r.user,
      database: r.database,
      subject: r.subject,
      durationMs: Date.now() - r.startedAt,
      bytesToServer: r.bytesToServer,
      bytesToClient: r.bytesToClient,
      frames: this.framer.frames,
      closeCode: code,
      closeReason: reason,
    };
    this.log(JSON.stringify(line));
    const metrics = this.options.metrics;
    if (metrics) {
      // Counting must never stop a session from closing.
      try {
        metrics.writeDataPoint(sessionDataPoint(line));
      } catch (error) {
        this.log(`pgwire-bridge: metrics not written: ${String(error)}`);
      }
    }
  }

  /** Read through a method: the state may change while a connect is awaited. */
  private isClosed(): boolean {
    return this.state === 'closed';
  }

  /** The client went away: leave no backend behind. */
  private onClientGone(): void {
    if (this.state === 'closed') return;
    this.close(CloseCode.Normal, 'client closed the connection');
  }

  private close(code: number, reason: string): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    clearTimeout(this.startupTimer);
    if (this.idleTimer !== null) clearTimeout(this.idleTimer);
    if (this.sessionTimer !== null) clearTimeout(this.sessionTimer);
    this.openWindow();
    this.report(code, reason);
    this.pending = [];
    const postgres = this.postgres;
    this.postgres = null;
    if (postgres) {
      // Frames accepted before the end are still queued toward PostgreSQL and must reach it, then a
      // Terminate (only well-formed between two whole client messages), then the close. A server
      // that has stopped reading holds this no longer than the grace period.
      const goodbye = this.framer.atBoundary ? postgres.writer.write(TERMINATE) : Promise.resolve();
      withTimeout(
        goodbye.then(() => postgres.writer.close()),
        CLOSE_GRACE_MS,
      )
        .catch(() => {})
        .finally(() => postgres.close());
    }
    safely(() => this.ws.close(code, reason));
  }
}

/** Server chunks waiting to go to the client as one WebSocket message. */
class OutgoingBuffer {
  private chunks: Uint8Array[] = [];
  size = 0;

  constructor(private readonly send: (message: Uint8Array) => void) {}

  get isEmpty(): boolean {
    return this.size === 0;
  }

  add(chunk: Uint8Array): void {
    this.chunks.push(chunk);
    this.size += chunk.length;
  }

  flush(): void {
    if (this.size === 0) return;
    const message = concatBytes(...this.chunks);
    this.chunks = [];
    this.size = 0;
    this.send(message);
  }
}

const NEXT_TURN = Symbol('next turn');

/** Resolves with the read if it completes before the event loop turns once more. */
function raceNextTurn<T>(read: Promise<T>): Promise<T | typeof NEXT_TURN> {
  let timer: ReturnType<typeof setTimeout> | null = null;
  const turn = new Promise<typeof NEXT_TURN>((resolve) => {
    timer = setTimeout(() => resolve(NEXT_TURN), 0);
  });
  return Promise.race([read, turn]).finally(() => {
    if (timer !== null) clearTimeout(timer);
  });
}

function asBridgeError(error: unknown): BridgeError {
  if (error instanceof BridgeError) return error;
  return new BridgeError('SERVER_UNREACHABLE', 'could not connect to the database server');
}

/** WebSocket calls throw once the peer is gone; at that point there is no one left to tell. */
function safely(action: () => void): void {
  try {
    action();
  } catch {
    // The client is already gone.
  }
}
