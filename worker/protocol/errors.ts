import { CloseCode, SqlState } from './constants.js';

/** Stable codes for every way the bridge refuses or ends a session. Tests assert these. */
export type BridgeErrorCode =
  | 'INVALID_STARTUP_LENGTH'
  | 'INVALID_STARTUP_LAYOUT'
  | 'INCOMPLETE_STARTUP'
  | 'UNSUPPORTED_PROTOCOL'
  | 'MISSING_USER'
  | 'INVALID_CANCEL_REQUEST'
  | 'INVALID_MESSAGE_TYPE'
  | 'INVALID_MESSAGE_LENGTH'
  | 'TEXT_MESSAGE'
  | 'INVALID_ACK'
  | 'SERVER_UNREACHABLE'
  | 'SERVER_TLS_REFUSED'
  | 'SERVER_TLS_FAILED'
  | 'SERVER_CONNECTION_LOST'
  | 'USER_NOT_ALLOWED'
  | 'TARGET_NOT_ALLOWED'
  | 'ROLE_NOT_ALLOWED'
  | 'SERVER_AUTH_FAILED'
  | 'DATABASE_NOT_ALLOWED'
  | 'REPLICATION_NOT_ALLOWED'
  | 'IDLE_TIMEOUT'
  | 'IDLE_IN_TRANSACTION_TIMEOUT'
  | 'SESSION_TOO_LONG'
  | 'LOGIN_TIMEOUT'
  | 'FLOW_WINDOW_EXCEEDED'
  | 'QUEUE_LIMIT_EXCEEDED'
  | 'TOO_MANY_SESSIONS'
  | 'TOO_MANY_LOGINS'
  | 'ISOLATE_BUDGET_EXHAUSTED'
  | 'TOKEN_EXPIRED'
  | 'SERVER_AUTH_INCOMPLETE'
  | 'SERVER_SCRAM_ITERATIONS'
  | 'CREDENTIAL_NOT_FOR_TARGET'
  | 'INVALID_STARTUP_ENCODING'
  | 'INTERNAL_ERROR';

interface ErrorKind {
  readonly sqlState: SqlState;
  readonly closeCode: CloseCode;
}

const kind = (sqlState: SqlState, closeCode: CloseCode): ErrorKind => ({ sqlState, closeCode });
const VIOLATION = kind(SqlState.ProtocolViolation, CloseCode.ProtocolError);
const UNSUPPORTED = kind(SqlState.FeatureNotSupported, CloseCode.ProtocolError);
const NOT_AUTHORIZED = kind(SqlState.InvalidAuthorizationSpecification, CloseCode.PolicyViolation);
const TOO_MANY = kind(SqlState.TooManyConnections, CloseCode.TryAgainLater);
const CANNOT_CONNECT = kind(SqlState.SqlclientUnableToEstablishSqlconnection, CloseCode.BadGateway);

const KINDS: Record<BridgeErrorCode, ErrorKind> = {
  INVALID_STARTUP_LENGTH: VIOLATION,
  INVALID_STARTUP_LAYOUT: VIOLATION,
  INCOMPLETE_STARTUP: VIOLATION,
  UNSUPPORTED_PROTOCOL: UNSUPPORTED,
  MISSING_USER: NOT_AUTHORIZED,
  INVALID_CANCEL_REQUEST: VIOLATION,
  INVALID_MESSAGE_TYPE: VIOLATION,
  INVALID_MESSAGE_LENGTH: VIOLATION,
  TEXT_MESSAGE: VIOLATION,
  INVALID_ACK: VIOLATION,
  SERVER_UNREACHABLE: CANNOT_CONNECT,
  SERVER_TLS_REFUSED: CANNOT_CONNECT,
  SERVER_TLS_FAILED: CANNOT_CONNECT,
  SERVER_CONNECTION_LOST: kind(SqlState.ConnectionFailure, CloseCode.BadGateway),
  USER_NOT_ALLOWED: NOT_AUTHORIZED,
  TARGET_NOT_ALLOWED: NOT_AUTHORIZED,
  ROLE_NOT_ALLOWED: NOT_AUTHORIZED,
  SERVER_AUTH_FAILED: CANNOT_CONNECT,
  DATABASE_NOT_ALLOWED: NOT_AUTHORIZED,
  REPLICATION_NOT_ALLOWED: NOT_AUTHORIZED,
  IDLE_TIMEOUT: kind(SqlState.IdleSessionTimeout, CloseCode.GoingAway),
  IDLE_IN_TRANSACTION_TIMEOUT: kind(SqlState.IdleInTransactionSessionTimeout, CloseCode.GoingAway),
  SESSION_TOO_LONG: kind(SqlState.AdminShutdown, CloseCode.GoingAway),
  LOGIN_TIMEOUT: kind(SqlState.ConnectionFailure, CloseCode.GoingAway),
  FLOW_WINDOW_EXCEEDED: VIOLATION,
  QUEUE_LIMIT_EXCEEDED: kind(SqlState.ConfigurationLimitExceeded, CloseCode.PolicyViolation),
  TOO_MANY_SESSIONS: TOO_MANY,
  TOO_MANY_LOGINS: TOO_MANY,
  ISOLATE_BUDGET_EXHAUSTED: TOO_MANY,
  TOKEN_EXPIRED: kind(SqlState.InvalidAuthorizationSpecification, CloseCode.GoingAway),
  SERVER_AUTH_INCOMPLETE: CANNOT_CONNECT,
  SERVER_SCRAM_ITERATIONS: CANNOT_CONNECT,
  CREDENTIAL_NOT_FOR_TARGET: NOT_AUTHORIZED,
  INVALID_STARTUP_ENCODING: VIOLATION,
  INTERNAL_ERROR: kind(SqlState.InternalError, CloseCode.InternalError),
};

/**
 * The one error type of the bridge: a stable code, the SQLSTATE sent to the client in a FATAL
 * ErrorResponse, and the WebSocket close code that follows it. The message is client-facing,
 * so it never carries internal error text.
 */
export class BridgeError extends Error {
  readonly code: BridgeErrorCode;
  readonly sqlState: SqlState;
  readonly closeCode: CloseCode;
  readonly detail: string | undefined;

  constructor(code: BridgeErrorCode, message: string, detail?: string) {
    super(message);
    this.name = 'BridgeError';
    this.code = code;
    this.sqlState = KINDS[code].sqlState;
    this.closeCode = KINDS[code].closeCode;
    this.detail = detail;
  }
}
