import type { BridgeConfig } from './config.js';
import { TransactionStatus } from './protocol/constants.js';
import { BridgeError } from './protocol/errors.js';
import { timer, type Timer } from '../common/timer.js';

/**
 * The time limits of one session, meaning what PostgreSQL's mean:
 * - startup: from the upgrade to a whole StartupMessage or CancelRequest;
 * - login: from the StartupMessage to the first ReadyForQuery (authentication_timeout);
 * - idle: ReadyForQuery `I` sent and nothing from the client since (idle_session_timeout), or
 *   the same inside a transaction, `T` or `E` (idle_in_transaction_session_timeout);
 * - the session's length, and its token's expiry.
 * Idleness is read off the protocol: every Query, Sync or FunctionCall the client sends earns
 * exactly one ReadyForQuery (but a Sync that COPY FROM STDIN reads, FrontendFramer.copyInStarted),
 * so the server is busy while it owes one. Keepalives and empty messages are not client traffic;
 * a running statement or COPY is not idleness.
 */
export class SessionLimits {
  private readonly startup: Timer;
  private readonly login: Timer;
  private readonly idle: Timer;
  private readonly idleInTransaction: Timer;
  private readonly sessionLength: Timer;
  private readonly tokenExpiry: Timer;
  /** ReadyForQuery messages the server owes: one for the login, one per Query, Sync, FunctionCall. */
  private owed = 1;
  private loggedIn = false;
  /** The client sent frames since the last ReadyForQuery it was owed (Parse, Bind, Execute without Sync count). */
  private sentSinceReady = false;

  /**
   * `end` is called once a limit is reached; `busy` says whether a statement may be running, in
   * which case the session cancels it before it ends.
   */
  constructor(config: BridgeConfig, tokenExpiresAtMs: number | null, end: (error: BridgeError) => void) {
    this.startup = timer(config.startupTimeoutMs, () =>
      end(new BridgeError('INCOMPLETE_STARTUP', 'incomplete startup packet')),
    );
    this.login = timer(config.loginTimeoutMs, () =>
      end(new BridgeError('LOGIN_TIMEOUT', 'canceling authentication due to timeout')),
    );
    this.idle = timer(config.idleTimeoutMs, () =>
      end(new BridgeError('IDLE_TIMEOUT', 'terminating connection due to idle-session timeout')),
    );
    this.idleInTransaction = timer(config.idleInTransactionTimeoutMs, () =>
      end(new BridgeError('IDLE_IN_TRANSACTION_TIMEOUT', 'terminating connection due to idle-in-transaction timeout')),
    );
    this.sessionLength = timer(config.maxSessionMs, () =>
      end(new BridgeError('SESSION_TOO_LONG', 'terminating connection: the session reached its maximum length')),
    );
    const untilExpiry =
      tokenExpiresAtMs === null ? 0 : Math.max(1, tokenExpiresAtMs + config.tokenExpiryGraceMs - Date.now());
    this.tokenExpiry = timer(untilExpiry, () =>
      end(new BridgeError('TOKEN_EXPIRED', 'terminating connection: the token expired')),
    );
    this.startup.start();
    this.sessionLength.start();
    this.tokenExpiry.start();
  }

  /** True while the server owes a ReadyForQuery: a statement, COPY or login may be under way. */
  get busy(): boolean {
    return this.owed > 0;
  }

  /**
   * True while a statement, COPY or function call may be running: logged in, and a ReadyForQuery
   * owed or frames sent since the last one (an Execute without a Sync runs, and may commit, all
   * the same). During the login nothing can commit, so there is nothing to cancel.
   */
  get statementRunning(): boolean {
    return this.loggedIn && (this.owed > 0 || this.sentSinceReady);
  }

  /** The StartupMessage (or a CancelRequest) is in: the login's clock starts. */
  startupDone(): void {
    this.startup.cancel();
    this.login.start();
  }

  /**
   * The client sent whole or partial frames, `syncPoints` more of them earning a ReadyForQuery
   * (fewer, when copy data showed Syncs sent earlier to be ones COPY ignores).
   */
  clientSent(syncPoints: number): void {
    this.owed = Math.max(0, this.owed + syncPoints);
    this.sentSinceReady = true;
    this.idle.cancel();
    this.idleInTransaction.cancel();
  }

  /** The server sent ReadyForQuery with this transaction status. */
  readyForQuery(status: number): void {
    if (!this.loggedIn) {
      this.loggedIn = true;
      this.login.cancel();
    }
    this.owed = Math.max(0, this.owed - 1);
    if (this.owed > 0) return;
    this.sentSinceReady = false;
    if (status === TransactionStatus.Idle) this.idle.start();
    else this.idleInTransaction.start();
  }

  stop(): void {
    for (const t of [
      this.startup,
      this.login,
      this.idle,
      this.idleInTransaction,
      this.sessionLength,
      this.tokenExpiry,
    ]) {
      t.dispose();
    }
  }
}
