import { WINDOW_TO_SERVER_BYTES } from '../common/flow-control.js';
import { parseFlowMessage } from '../common/subprotocols.js';
import { ClientChannel } from './client-channel.js';
import type { BridgeConfig, MetricsDataset } from './config.js';
import { edgeLogin } from './edge-login.js';
import {
  GUARANTEED_SHARE_BYTES,
  ISOLATE_POLL_MS,
  isolateLoad,
  type IsolateLoad,
  type LoginTicket,
} from './isolate-load.js';
import { SessionLimits } from './limits.js';
import { checkStartup, chooseRole, withRole, type Claims, type EdgeLogin } from './policy/startup-policy.js';
import type { Target } from './policy/targets.js';
import {
  ConnectTimeout,
  openPostgresSocket,
  sendCancelRequest,
  withTimeout,
  type PostgresSocket,
} from './postgres-socket.js';
import { BackendBoundaries } from './protocol/backend-boundaries.js';
import { BackendType, CloseCode, ENCRYPTION_REFUSED } from './protocol/constants.js';
import { encodeFatalError } from './protocol/error-response.js';
import { BridgeError } from './protocol/errors.js';
import { FrontendFramer, type FrontendEvent } from './protocol/frontend-framer.js';
import { cancelRequest, TERMINATE } from './protocol/requests.js';
import { SaslOfferFilter } from './protocol/sasl-offer-filter.js';
import { encodeStartupMessage } from './protocol/startup.js';
import { relayServerToClient, type RelayHooks } from './relay.js';
import { ServerWrites } from './server-writes.js';
import { reportSession, type SessionRecord } from './session-report.js';
import { timer, type Timer } from '../common/timer.js';

/** Cancels one ending may send: past them, the grace period ends the session all the same. */
const MAX_CANCELS = 3;

/** How long closing waits for writes still queued toward PostgreSQL. */
const CLOSE_GRACE_MS = 1000;

const ENCRYPTION_REFUSED_REPLY = new Uint8Array([ENCRYPTION_REFUSED]);

export interface SessionOptions {
  /** The PostgreSQL server this session relays to. */
  readonly target: Target;
  /** Set when the session is refused before it starts (a target not allowed). */
  readonly refusal?: BridgeError;
  /** Whether the client takes part in flow control (common/flow-control.ts). */
  readonly flowControl?: boolean;
  /** Claims of the token the client presented, when tokens are checked. */
  readonly claims?: Claims | null;
  readonly metrics?: MetricsDataset | undefined;
  readonly log?: (line: string) => void;
  /** The isolate's sessions together; a test may give a session its own. */
  readonly load?: IsolateLoad;
  /**
   * The client's first bytes, carried in the upgrade (its StartupMessage): judged and counted as
   * if they had come as its first binary message, so the connection to PostgreSQL starts while
   * the upgrade is answered.
   */
  readonly startup?: Uint8Array;
}

/** A session's phase, carrying what belongs to it. */
type Phase =
  /** Reading SSLRequest, GSSENCRequest, then the StartupMessage or a CancelRequest. */
  | { readonly name: 'startup' }
  /** Waiting for one of the isolate's login slots (MAX_LOGINS_IN_PROGRESS); client frames wait (toPostgres). */
  | { readonly name: 'queued'; readonly ticket: LoginTicket; readonly poll: ReturnType<typeof setInterval> }
  /** TCP, TLS and (with edge-held credentials) the login; client frames wait (toPostgres). */
  | { readonly name: 'connecting'; opened: PostgresSocket | null }
  /** Forwarding a CancelRequest on a connection of its own. */
  | { readonly name: 'cancelling' }
  | { readonly name: 'relaying'; readonly postgres: PostgresSocket }
  /**
   * A limit was reached while a statement ran: it is cancelled, and the session ends at ReadyForQuery.
   * Client bytes are dropped from here on, so whether a Terminate may follow what reached PostgreSQL
   * is decided now (`atBoundary`), not by the framer at close, which goes on reading them.
   */
  | {
      readonly name: 'ending';
      readonly postgres: PostgresSocket;
      readonly error: BridgeError;
      readonly atBoundary: boolean;
    }
  | { readonly name: 'closed' };

/**
 * One client's bridge: reads the startup phase from the WebSocket, opens PostgreSQL only for a
 * valid StartupMessage, then relays both ways, framing and checking every client message. Every
 * byte it holds is bounded: by the flow-control windows (or, without flow control, a cap toward
 * PostgreSQL past which it ends the session), and together with the isolate's other sessions by
 * the isolate's budget. Whichever side ends, the other is ended too.
 */
export class BridgeSession {
  private phase: Phase = { name: 'startup' };
  private readonly framer: FrontendFramer;
  private readonly boundaries = new BackendBoundaries();
  private readonly saslOffer = new SaslOfferFilter();
  private readonly channel: ClientChannel;
  private readonly limits: SessionLimits;
  private readonly load: IsolateLoad;
  private readonly claims: Claims | null;
  private readonly log: (line: string) => void;
  private readonly record: SessionRecord;
  /** Counted in the isolate's sessions, or its logins in progress. */
  private admitted = false;
  private loggingIn = false;
  /** Client bytes accepted for PostgreSQL, until its TCP writer takes them. */
  private readonly toPostgres = new ServerWrites(
    (bytes) => this.onWrittenToServer(bytes),
    (error) => this.onServerFailure(error),
  );
  /** What this session holds, as last told to the isolate. */
  private held = 0;
  private peakHeld = 0;
  private readyForQuerySeen = 0;
  private copyInSeen = 0;
  private wakeRelay: (() => void) | null = null;
  private endGrace: Timer | null = null;
  /** Runs from when the session holds more than its share toward the client, until an echo (onStalled). */
  private readonly stalled: Timer;
  private overBudgetWhenWatched = false;
  private cancelInFlight = false;
  private cancelsSent = 0;
  private readonly relayHooks: RelayHooks = {
    readable: () => this.readableFromServer(),
    roomChanged: () => this.roomChanged(),
    isClosed: () => this.isClosed(),
    overBudget: () => this.load.overBudget(this.config),
    take: (chunk, given) => this.takeServerBytes(chunk, given),
  };
  /**
   * Taken off at close: workerd still reads what a client sends after the close (until its own
   * close arrives), but a WebSocket with no message listener keeps far less of it in memory
   * (a client flooding on past the close: +65 MiB instead of +190 MiB in workerd 1.20261117).
   */
  private readonly onMessageEvent = (event: MessageEvent) => this.onClientMessage(event.data);

  constructor(
    private readonly ws: WebSocket,
    private readonly config: BridgeConfig,
    private readonly options: SessionOptions,
  ) {
    this.load = options.load ?? isolateLoad;
    this.claims = options.claims ?? null;
    this.log = options.log ?? ((line) => console.log(line));
    this.channel = new ClientChannel(ws, options.flowControl ?? false, config.windowToClientBytes);
    this.stalled = timer(config.stalledClientTimeoutMs, () => this.onStalled());
    const subject = this.claims?.sub;
    this.record = {
      startedAt: Date.now(),
      user: null,
      database: null,
      subject: typeof subject === 'string' ? subject : null,
      bytesToServer: 0,
    };
    this.framer = new FrontendFramer({ maxMessageLength: config.maxMessageBytes });
    const exp = this.claims?.exp;
    this.limits = new SessionLimits(config, typeof exp === 'number' ? exp * 1000 : null, (error) =>
      this.endSession(error),
    );
    ws.addEventListener('message', this.onMessageEvent);
    ws.addEventListener('close', () => this.onClientGone());
    ws.addEventListener('error', () => this.onClientGone());
    const refusal = options.refusal ?? this.load.admit(config);
    if (refusal) {
      this.refuse(refusal);
      return;
    }
    this.admitted = true;
    if (options.startup) this.onClientBytes(options.startup);
  }

  private onClientMessage(data: ArrayBuffer | string): void {
    if (this.phase.name === 'closed') return;
    if (typeof data === 'string') this.onTextMessage(data);
    else this.onClientBytes(new Uint8Array(data));
  }

  private onClientBytes(data: Uint8Array): void {
    const fromClient = this.channel.fromClient;
    // Counted even empty: each message costs workerd far more than its bytes.
    if (fromClient && !fromClient.receive(data.byteLength)) return this.refuseWindowExceeded();
    // An empty message carries nothing: not traffic, not activity.
    if (data.byteLength === 0) return;
    const syncPoints = this.framer.syncPoints;
    let forwarded = 0;
    for (const event of this.framer.push(data)) {
      if (event.type === 'frames') forwarded += event.bytes.length;
      this.onFrontendEvent(event);
      if (this.isClosed()) return;
    }
    if (forwarded > 0 && this.phase.name !== 'ending') this.limits.clientSent(this.framer.syncPoints - syncPoints);
    // Bytes not bound for PostgreSQL (startup packets, a header held back until whole) are consumed here.
    fromClient?.consume(data.byteLength - forwarded);
    this.channel.echoConsumed();
    if (!fromClient && this.toPostgres.pending > WINDOW_TO_SERVER_BYTES) {
      // Without flow control the bridge cannot pause the client; past the cap it ends the session instead of growing.
      this.refuse(
        new BridgeError(
          'QUEUE_LIMIT_EXCEEDED',
          'the client sent more than the database server has taken',
          `At most ${WINDOW_TO_SERVER_BYTES} bytes may wait for the server; clients taking part in flow control are held back instead.`,
        ),
      );
    }
  }

  /** The client went past its window toward the bridge, in bytes or in messages. */
  private refuseWindowExceeded(): void {
    this.refuse(new BridgeError('FLOW_WINDOW_EXCEEDED', 'the client sent past its flow-control window'));
  }

  /** Text messages carry flow control, and nothing else. */
  private onTextMessage(text: string): void {
    const { toClient, fromClient } = this.channel;
    if (!toClient || !fromClient) {
      this.refuse(new BridgeError('TEXT_MESSAGE', 'the bridge accepts only binary WebSocket messages'));
      return;
    }
    const message = parseFlowMessage(text);
    if (message === null) {
      this.refuse(new BridgeError('INVALID_ACK', 'invalid flow-control acknowledgement'));
      return;
    }
    switch (message.kind) {
      case 'keepalive':
        // The WebSocket is in use; the session is not necessarily. A message all the same.
        if (!fromClient.keepalive()) this.refuseWindowExceeded();
        return;
      case 'mark':
        // Each mark costs an echo, sent whether or not the client reads: marks that cover no
        // bytes would have the bridge queue an echo for every few bytes a client sends.
        if (fromClient.unmarked === 0) {
          this.refuse(new BridgeError('EMPTY_MARK', 'the client sent a flow-control mark that covers no bytes'));
          return;
        }
        if (!fromClient.mark(message.id)) {
          this.refuse(new BridgeError('FLOW_WINDOW_EXCEEDED', 'the client sent more flow-control marks than allowed'));
          return;
        }
        this.channel.echoConsumed();
        return;
      case 'echo':
        if (!toClient.echoed(message.id)) {
          this.refuse(new BridgeError('INVALID_ACK', 'invalid flow-control acknowledgement'));
          return;
        }
        this.stalled.cancel();
        this.updateHeld();
        this.wakeRelay?.();
        return;
    }
  }

  private onFrontendEvent(event: FrontendEvent): void {
    switch (event.type) {
      case 'ssl-request':
      case 'gssenc-request':
        // The client's link is already wss://; encryption inside it would buy nothing.
        this.channel.sendNow(ENCRYPTION_REFUSED_REPLY);
        return;
      case 'startup':
        this.onStartup(event);
        return;
      case 'cancel':
        // The login clock bounds the wait for a slot and the cancel's own connection alike.
        this.limits.startupDone();
        this.whenLoginSlotFree(() => {
          this.phase = { name: 'cancelling' };
          void this.forwardCancel(event.packet);
        });
        return;
      case 'left-before-startup':
        // As PostgreSQL does: no word to a client that has already gone (pg's connect(); end()).
        this.close(CloseCode.Normal, 'client left before startup');
        return;
      case 'frames':
        this.toServer(event.bytes);
        return;
      case 'refused':
        this.refuse(event.error);
        return;
    }
  }

  private onStartup(event: Extract<FrontendEvent, { type: 'startup' }>): void {
    this.limits.startupDone();
    const login = chooseRole(this.config, this.claims, this.options.target);
    if (login instanceof BridgeError) return this.refuse(login);
    const message = login ? withRole(event.message, login.role) : event.message;
    this.record.user = message.user;
    this.record.database = message.database;
    const refusal = checkStartup(message, this.config, this.claims);
    if (refusal) return this.refuse(refusal);
    const packet = login
      ? encodeStartupMessage(message.majorVersion, message.minorVersion, message.parameters)
      : event.packet;
    this.whenLoginSlotFree(() => {
      const phase: Phase = { name: 'connecting', opened: null };
      this.phase = phase;
      void this.connect(phase, packet, login);
    });
  }

  /**
   * Only so many sessions of an isolate may hold a TCP connection that has not logged in: this
   * one opens its connection when a slot is free, waiting in line (within its login timeout)
   * when none is.
   */
  private whenLoginSlotFree(open: () => void): void {
    const ticket = this.load.takeLoginSlot(this.config);
    if (ticket.granted) {
      this.loggingIn = true;
      open();
      return;
    }
    const poll = setInterval(() => {
      if (!ticket.granted) return;
      clearInterval(poll);
      this.loggingIn = true;
      open();
    }, ISOLATE_POLL_MS);
    this.phase = { name: 'queued', ticket, poll };
  }

  private toServer(bytes: Uint8Array): void {
    const phase = this.phase;
    if (phase.name === 'ending') {
      // The session is ending: nothing more reaches PostgreSQL.
      this.channel.fromClient?.consume(bytes.length);
      return;
    }
    // Queued, connecting, relaying: they go out once PostgreSQL's connection is ready (start()).
    this.toPostgres.add(bytes);
    this.updateHeld();
  }

  /** Client bytes count until PostgreSQL's TCP writer has taken them; only then are they echoed. */
  private onWrittenToServer(bytes: number): void {
    this.record.bytesToServer += bytes;
    this.channel.fromClient?.consume(bytes);
    this.channel.echoConsumed();
    this.updateHeld();
  }

  private async connect(
    phase: Extract<Phase, { name: 'connecting' }>,
    startupPacket: Uint8Array,
    login: EdgeLogin | null,
  ): Promise<void> {
    let postgres: PostgresSocket;
    let afterLogin: Uint8Array | null = null;
    try {
      postgres = await openPostgresSocket(this.config, this.options.target, startupPacket, (line) => this.log(line));
    } catch (error) {
      this.refuse(this.asBridgeError(error));
      return;
    }
    if (this.phase !== phase) {
      // The session ended while TCP was opening (the client left, a limit): no login for no one.
      postgres.close();
      return;
    }
    phase.opened = postgres;
    if (login) {
      try {
        afterLogin = await withTimeout(
          edgeLogin(postgres, login, this.config.scramIterations),
          this.config.connectTimeoutMs,
        );
      } catch (error) {
        postgres.close();
        this.refuse(
          error instanceof ConnectTimeout
            ? new BridgeError('SERVER_UNREACHABLE', 'the database server did not finish authentication in time')
            : this.asBridgeError(error),
        );
        return;
      }
    }
    if (this.phase !== phase) {
      postgres.close();
      return;
    }
    this.phase = { name: 'relaying', postgres };
    this.record.bytesToServer += startupPacket.length;
    // What PostgreSQL said after the bridge's own login (AuthenticationOk on) goes to the client first.
    if (afterLogin) {
      for (const bytes of this.passServerBytes(afterLogin)) {
        this.scanServerBytes(bytes);
        this.channel.sendNow(bytes);
      }
    }
    this.toPostgres.start(postgres.writer);
    void this.relay(postgres);
  }

  /** CancelRequest goes on its own connection, and PostgreSQL answers it by closing. */
  private async forwardCancel(packet: Uint8Array): Promise<void> {
    try {
      await sendCancelRequest(this.config, this.options.target, packet, (line) => this.log(line));
      this.close(CloseCode.Normal, 'cancel request sent');
    } catch (error) {
      this.refuse(this.asBridgeError(error));
    }
  }

  private async relay(postgres: PostgresSocket): Promise<void> {
    try {
      await relayServerToClient(postgres, this.channel, this.relayHooks);
    } catch (error) {
      if (this.phase.name !== 'closed') this.log(`read from PostgreSQL failed: ${String(error)}`);
    }
    this.onServerEnd();
  }

  /**
   * The window (as large as the isolate's load allows), and the isolate's budget beyond a small
   * guaranteed share, decide how much to read on.
   */
  private readableFromServer(): number {
    this.updateHeld();
    const acknowledged = this.channel.toClient?.acknowledged ?? 0;
    this.channel.setWindow(this.load.windowToClient(this.config, this.held, acknowledged));
    const room = this.channel.room;
    if (!this.load.overBudget(this.config)) return room;
    return Math.min(room, Math.max(0, GUARANTEED_SHARE_BYTES - this.channel.heldBytes));
  }

  /**
   * Resolves on the next echo or at close, and while the isolate is over its budget also after a
   * short while, to look again: another session freeing budget cannot wake this one (workerd
   * refuses I/O across requests), so it looks from its own timer.
   */
  private roomChanged(): Promise<void> {
    return new Promise((resolve) => {
      const poll = this.load.overBudget(this.config) ? setTimeout(() => wake(), ISOLATE_POLL_MS) : null;
      const wake = () => {
        if (poll !== null) clearTimeout(poll);
        this.wakeRelay = null;
        resolve();
      };
      this.wakeRelay = wake;
    });
  }

  /** Server bytes read, into the message gathered for the client: true when it must go at once. */
  private takeServerBytes(chunk: Uint8Array, given: boolean): boolean {
    if (this.saslOffer.passing) return this.gather(chunk, given);
    let urgent = false;
    for (const bytes of this.passServerBytes(chunk)) urgent = this.gather(bytes, false);
    return urgent;
  }

  /** Scanned first: once given to the channel, the bytes may already be on their way. */
  private gather(bytes: Uint8Array, given: boolean): boolean {
    const urgent = this.scanServerBytes(bytes);
    this.channel.add(bytes, given);
    return urgent;
  }

  /**
   * Server bytes as the client is to get them: during the login, AuthenticationSASL without
   * SCRAM-SHA-256-PLUS, which binds to the bridge's TLS leg and not to the client's.
   */
  private passServerBytes(chunk: Uint8Array): Uint8Array[] {
    try {
      return this.saslOffer.push(chunk);
    } catch (error) {
      this.refuse(this.asBridgeError(error));
      return [];
    }
  }

  /** Follows the server's messages (as sent to the client) for the relay: ReadyForQuery drives the limits. */
  private scanServerBytes(chunk: Uint8Array): boolean {
    const urgent = this.boundaries.scan(chunk);
    while (this.copyInSeen < this.boundaries.copyInResponseCount) {
      this.copyInSeen += 1;
      this.framer.copyInStarted();
    }
    if (!this.boundaries.inCopyIn) this.framer.copyInEnded();
    while (this.readyForQuerySeen < this.boundaries.readyForQueryCount) {
      this.readyForQuerySeen += 1;
      this.onReadyForQuery(this.boundaries.transactionStatus);
    }
    return urgent;
  }

  private onReadyForQuery(status: number): void {
    if (this.loggingIn) {
      this.loggingIn = false;
      this.load.endLogin();
    }
    this.limits.readyForQuery(status);
    const phase = this.phase;
    if (phase.name !== 'ending') return;
    // The ReadyForQuery is still to be relayed: end right after it goes out.
    if (!this.limits.busy) queueMicrotask(() => this.refuse(phase.error));
    else this.cancelRunningStatement();
  }

  /**
   * A limit was reached. With no statement running the session ends at once; otherwise the
   * statement is cancelled first, so that it cannot commit after the client was told the
   * session ended, and the session ends at the ReadyForQuery that follows (or after the grace).
   */
  private endSession(error: BridgeError): void {
    const phase = this.phase;
    if (phase.name === 'queued') {
      this.refuse(new BridgeError('TOO_MANY_LOGINS', 'sorry, too many clients are logging in already'));
      return;
    }
    if (phase.name !== 'relaying' || !this.limits.statementRunning || !this.boundaries.backendKeyData) {
      this.refuse(error);
      return;
    }
    this.phase = { name: 'ending', postgres: phase.postgres, error, atBoundary: this.framer.atBoundary };
    this.cancelRunningStatement();
    this.endGrace = timer(this.config.connectTimeoutMs, () => this.refuse(error));
    this.endGrace.start();
  }

  /**
   * One cancel connection at a time, and at most MAX_CANCELS per ending: a client that pipelines
   * thousands of Syncs behind a long statement gets a ReadyForQuery for each, and must not turn
   * them into as many connections to the postmaster.
   */
  private cancelRunningStatement(): void {
    const key = this.boundaries.backendKeyData;
    if (!key || this.cancelInFlight || this.cancelsSent >= MAX_CANCELS) return;
    this.cancelInFlight = true;
    this.cancelsSent += 1;
    sendCancelRequest(this.config, this.options.target, cancelRequest(key), (line) => this.log(line))
      .catch((error: unknown) => this.log(`cancel request failed: ${String(error)}`))
      .finally(() => (this.cancelInFlight = false));
  }

  /**
   * The session has held more than its share toward the client for STALLED_CLIENT_TIMEOUT_MS and
   * no echo came — whether the relay waits for room or PostgreSQL has nothing more. That alone
   * ends nothing: a client may pause a stream as long as it likes, and PostgreSQL waits. But when
   * the isolate was over its budget at the start of that time and is again at its end, a session
   * like that holds memory every other session's large results need, so it ends (the client is
   * not reading; the FATAL is for its log, if ever). Otherwise the clock starts over.
   */
  private onStalled(): void {
    if (this.phase.name === 'closed') return;
    if (this.channel.heldBytes < GUARANTEED_SHARE_BYTES) return; // watched anew once it holds more
    // Over budget when the clock started and again now: sustained pressure, not a passing spike.
    const overBudget = this.load.overBudget(this.config);
    if (!overBudget || !this.overBudgetWhenWatched) {
      this.overBudgetWhenWatched = overBudget;
      this.stalled.start(); // look again after as long
      return;
    }
    this.refuse(
      new BridgeError(
        'CLIENT_STALLED',
        'terminating connection because the client stopped reading while the bridge is short of memory',
        `No acknowledgement for ${this.config.stalledClientTimeoutMs} ms with ${this.channel.heldBytes} bytes unread.`,
      ),
    );
  }

  /** PostgreSQL closed its side: pass on its last word, or say the connection was lost. */
  private onServerEnd(): void {
    if (this.phase.name === 'closed') return;
    // After the client's Terminate, PostgreSQL closing is its answer: the client ended the
    // session, whether its WebSocket close or PostgreSQL's arrives here first.
    if (this.framer.sawTerminate) {
      this.onClientGone();
      return;
    }
    if (this.boundaries.atBoundary && this.boundaries.lastMessageType === BackendType.ErrorResponse) {
      this.close(CloseCode.Normal, 'server closed the connection');
      return;
    }
    this.refuse(new BridgeError('SERVER_CONNECTION_LOST', 'server closed the connection unexpectedly'));
  }

  private onServerFailure(error: unknown): void {
    if (this.phase.name === 'closed') return;
    this.log(`write to PostgreSQL failed: ${String(error)}`);
    this.refuse(new BridgeError('SERVER_CONNECTION_LOST', 'connection to the database server was lost'));
  }

  /** Where I/O meets the session: known failures keep their code; anything else is an internal error. */
  private asBridgeError(error: unknown): BridgeError {
    if (error instanceof BridgeError) return error;
    this.log(`pgwire-bridge: internal error: ${String(error)}`);
    return new BridgeError('INTERNAL_ERROR', 'internal error in the bridge');
  }

  /**
   * Ends the session as PostgreSQL ends one it refuses: a FATAL ErrorResponse, then close. Server
   * bytes already read go first; the ErrorResponse follows only where it lands between two whole
   * server messages, since one in the middle of another would garble the client's stream.
   */
  private refuse(error: BridgeError): void {
    if (this.phase.name === 'closed') return;
    this.channel.flush();
    if (this.boundaries.atBoundary) this.channel.sendNow(encodeFatalError(error));
    this.close(error.closeCode, error.code);
  }

  /** Read through a method: the phase changes under awaits and callbacks that narrowing cannot see. */
  private isClosed(): boolean {
    return this.phase.name === 'closed';
  }

  /** Tells the isolate what this session holds now. */
  private updateHeld(): void {
    const now = this.phase.name === 'closed' ? 0 : this.toPostgres.pending + this.channel.heldBytes;
    if (now > 0 && !this.stalled.running && this.channel.toClient && this.channel.heldBytes >= GUARANTEED_SHARE_BYTES) {
      // From here, an echo must come within STALLED_CLIENT_TIMEOUT_MS, or onStalled looks.
      this.overBudgetWhenWatched = this.load.overBudget(this.config);
      this.stalled.start();
    }
    if (now === this.held) return;
    this.load.hold(now - this.held);
    this.held = now;
    if (now > this.peakHeld) this.peakHeld = now;
  }

  /** The client went away: leave no backend behind. */
  private onClientGone(): void {
    this.close(CloseCode.Normal, 'client closed the connection');
  }

  private close(code: number, reason: string): void {
    const phase = this.phase;
    if (phase.name === 'closed') return;
    this.phase = { name: 'closed' };
    this.ws.removeEventListener('message', this.onMessageEvent);
    this.limits.stop();
    this.endGrace?.dispose();
    this.stalled.dispose();
    this.wakeRelay?.();
    this.updateHeld();
    if (phase.name === 'queued') {
      clearInterval(phase.poll);
      this.load.cancelLoginWait(phase.ticket);
    }
    if (this.loggingIn) this.load.endLogin();
    if (this.admitted) this.load.leave();
    this.loggingIn = false;
    this.admitted = false;
    this.report(code, reason);
    const postgres =
      phase.name === 'relaying' || phase.name === 'ending'
        ? phase.postgres
        : phase.name === 'connecting'
          ? phase.opened
          : null;
    if (postgres) {
      // Frames accepted before the end are still queued toward PostgreSQL and must reach it, then a
      // Terminate (only well-formed between two whole client messages), then the close. A server
      // that has stopped reading holds this no longer than the grace period.
      this.toPostgres.flushAll();
      const atBoundary = phase.name === 'ending' ? phase.atBoundary : this.framer.atBoundary;
      const goodbye = atBoundary ? postgres.writer.write(TERMINATE) : Promise.resolve();
      withTimeout(
        goodbye.then(() => postgres.writer.close()),
        CLOSE_GRACE_MS,
      )
        .catch(() => {})
        .finally(() => postgres.close());
    }
    this.channel.close(code, reason);
  }

  private report(code: number, reason: string): void {
    const r = this.record;
    reportSession(
      {
        target: `${this.options.target.host}:${this.options.target.port}`,
        user: r.user,
        database: r.database,
        subject: r.subject,
        durationMs: Date.now() - r.startedAt,
        bytesToServer: r.bytesToServer,
        bytesToClient: this.channel.bytesSent,
        frames: this.framer.frames,
        peakHeldBytes: this.peakHeld,
        closeCode: code,
        closeReason: reason,
      },
      this.log,
      this.options.metrics,
    );
  }
}
