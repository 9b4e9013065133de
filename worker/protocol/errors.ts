import { CloseCode, SqlState } from './constants.js';

/**
 * Stable codes for every way the bridge refuses an upgrade or refuses or ends a session, from the
 * HTTP upgrade to the close. Tests and logs use these.
 */
export type BridgeErrorCode =
  | 'NOT_FOUND'
  | 'METHOD_NOT_ALLOWED'
  | 'UPGRADE_REQUIRED'
  | 'MISCONFIGURED'
  | 'ORIGIN_NOT_ALLOWED'
  | 'TOKEN_REQUIRED'
  | 'TOKEN_INVALID'
  | 'FLOW_CONTROL_REQUIRED'
  | 'RATE_LIMITED'
  | 'INVALID_INLINE_STARTUP'
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
  | 'EMPTY_MARK'
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
  | 'CLIENT_STALLED'
  | 'TOO_MANY_SESSIONS'
  | 'TOO_MANY_LOGINS'
  | 'TOKEN_EXPIRED'
  | 'SERVER_AUTH_INCOMPLETE'
  | 'SERVER_SCRAM_ITERATIONS'
  | 'CREDENTIAL_NOT_FOR_TARGET'
  | 'INVALID_STARTUP_ENCODING'
  | 'INTERNAL_ERROR';

/**
 * How each code reaches the client: the SQLSTATE of the FATAL ErrorResponse, the WebSocket close
 * code after it, and the HTTP status when the refusal comes at the upgrade, before any WebSocket.
 */
interface ErrorKind {
  readonly sqlState: SqlState;
  readonly closeCode: CloseCode;
  readonly httpStatus: number;
}

const kind = (sqlState: SqlState, closeCode: CloseCode, httpStatus: number): ErrorKind => ({
  sqlState,
  closeCode,
  httpStatus,
});
const VIOLATION = kind(SqlState.ProtocolViolation, CloseCode.ProtocolError, 400);
const UNSUPPORTED = kind(SqlState.FeatureNotSupported, CloseCode.ProtocolError, 400);
const NOT_AUTHORIZED = kind(SqlState.InvalidAuthorizationSpecification, CloseCode.PolicyViolation, 403);
const UNAUTHENTICATED = kind(SqlState.InvalidAuthorizationSpecification, CloseCode.PolicyViolation, 401);
const TOO_MANY = kind(SqlState.TooManyConnections, CloseCode.TryAgainLater, 503);
const CANNOT_CONNECT = kind(SqlState.SqlclientUnableToEstablishSqlconnection, CloseCode.BadGateway, 502);
const TIMED_OUT = (sqlState: SqlState) => kind(sqlState, CloseCode.GoingAway, 408);

const KINDS: Record<BridgeErrorCode, ErrorKind> = {
  NOT_FOUND: kind(SqlState.SqlclientUnableToEstablishSqlconnection, CloseCode.PolicyViolation, 404),
  METHOD_NOT_ALLOWED: kind(SqlState.ProtocolViolation, CloseCode.ProtocolError, 405),
  UPGRADE_REQUIRED: kind(SqlState.ProtocolViolation, CloseCode.ProtocolError, 426),
  MISCONFIGURED: kind(SqlState.InternalError, CloseCode.InternalError, 500),
  ORIGIN_NOT_ALLOWED: NOT_AUTHORIZED,
  TOKEN_REQUIRED: UNAUTHENTICATED,
  TOKEN_INVALID: UNAUTHENTICATED,
  FLOW_CONTROL_REQUIRED: kind(SqlState.ProtocolViolation, CloseCode.PolicyViolation, 400),
  RATE_LIMITED: kind(SqlState.TooManyConnections, CloseCode.TryAgainLater, 429),
  INVALID_INLINE_STARTUP: VIOLATION,
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
  EMPTY_MARK: VIOLATION,
  SERVER_UNREACHABLE: CANNOT_CONNECT,
  SERVER_TLS_REFUSED: CANNOT_CONNECT,
  SERVER_TLS_FAILED: CANNOT_CONNECT,
  SERVER_CONNECTION_LOST: kind(SqlState.ConnectionFailure, CloseCode.BadGateway, 502),
  USER_NOT_ALLOWED: NOT_AUTHORIZED,
  TARGET_NOT_ALLOWED: NOT_AUTHORIZED,
  ROLE_NOT_ALLOWED: NOT_AUTHORIZED,
  SERVER_AUTH_FAILED: CANNOT_CONNECT,
  DATABASE_NOT_ALLOWED: NOT_AUTHORIZED,
  REPLICATION_NOT_ALLOWED: NOT_AUTHORIZED,
  IDLE_TIMEOUT: TIMED_OUT(SqlState.IdleSessionTimeout),
  IDLE_IN_TRANSACTION_TIMEOUT: TIMED_OUT(SqlState.IdleInTransactionSessionTimeout),
  SESSION_TOO_LONG: TIMED_OUT(SqlState.AdminShutdown),
  LOGIN_TIMEOUT: TIMED_OUT(SqlState.ConnectionFailure),
  FLOW_WINDOW_EXCEEDED: VIOLATION,
  QUEUE_LIMIT_EXCEEDED: kind(SqlState.ConfigurationLimitExceeded, CloseCode.PolicyViolation, 413),
  CLIENT_STALLED: kind(SqlState.InsufficientResources, CloseCode.TryAgainLater, 503),
  TOO_MANY_SESSIONS: TOO_MANY,
  TOO_MANY_LOGINS: TOO_MANY,
  TOKEN_EXPIRED: kind(SqlState.InvalidAuthorizationSpecification, CloseCode.GoingAway, 401),
  SERVER_AUTH_INCOMPLETE: CANNOT_CONNECT,
  SERVER_SCRAM_ITERATIONS: CANNOT_CONNECT,
  CREDENTIAL_NOT_FOR_TARGET: NOT_AUTHORIZED,
  INVALID_STARTUP_ENCODING: VIOLATION,
  INTERNAL_ERROR: kind(SqlState.InternalError, CloseCode.InternalError, 500),
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
  readonly httpStatus: number;
  readonly detail: string | undefined;

  constructor(code: BridgeErrorCode, message: string, detail?: string) {
    super(message);
    this.name = 'BridgeError';
    this.code = code;
    this.sqlState = KINDS[code].sqlState;
    this.closeCode = KINDS[code].closeCode;
    this.httpStatus = KINDS[code].httpStatus;
    this.detail = detail;
  }
}
