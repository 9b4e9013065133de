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
  | 'SERVER_CONNECTION_LOST';

interface ErrorKind {
  readonly sqlState: SqlState;
  readonly closeCode: CloseCode;
}

const KINDS: Record<BridgeErrorCode, ErrorKind> = {
  INVALID_STARTUP_LENGTH: { sqlState: SqlState.ProtocolViolation, closeCode: CloseCode.ProtocolError },
  INVALID_STARTUP_LAYOUT: { sqlState: SqlState.ProtocolViolation, closeCode: CloseCode.ProtocolError },
  INCOMPLETE_STARTUP: { sqlState: SqlState.ProtocolViolation, closeCode: CloseCode.ProtocolError },
  UNSUPPORTED_PROTOCOL: { sqlState: SqlState.FeatureNotSupported, closeCode: CloseCode.ProtocolError },
  MISSING_USER: {
    sqlState: SqlState.InvalidAuthorizationSpecification,
    closeCode: CloseCode.PolicyViolation,
  },
  INVALID_CANCEL_REQUEST: { sqlState: SqlState.ProtocolViolation, closeCode: CloseCode.ProtocolError },
  INVALID_MESSAGE_TYPE: { sqlState: SqlState.ProtocolViolation, closeCode: CloseCode.ProtocolError },
  INVALID_MESSAGE_LENGTH: { sqlState: SqlState.ProtocolViolation, closeCode: CloseCode.ProtocolError },
  TEXT_MESSAGE: { sqlState: SqlState.ProtocolViolation, closeCode: CloseCode.ProtocolError },
  INVALID_ACK: { sqlState: SqlState.ProtocolViolation, closeCode: CloseCode.ProtocolError },
  SERVER_UNREACHABLE: {
    sqlState: SqlState.SqlclientUnableToEstablishSqlconnection,
    closeCode: CloseCode.BadGateway,
  },
  SERVER_TLS_REFUSED: {
    sqlState: SqlState.SqlclientUnableToEstablishSqlconnection,
    closeCode: CloseCode.BadGateway,
  },
  SERVER_TLS_FAILED: {
    sqlState: SqlState.SqlclientUnableToEstablishSqlconnection,
    closeCode: CloseCode.BadGateway,
  },
  SERVER_CONNECTION_LOST: { sqlState: SqlState.ConnectionFailure, closeCode: CloseCode.BadGateway },
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
