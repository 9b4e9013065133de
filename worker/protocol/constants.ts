/**
 * Every number of the PostgreSQL frontend/backend protocol the bridge relies on, named once.
 * Names follow the PostgreSQL sources (src/include/libpq/pqcomm.h, protocol.h).
 */

/** Startup packets are bounded like the postmaster bounds them (MAX_STARTUP_PACKET_LENGTH). */
export const MIN_STARTUP_PACKET_LENGTH = 8;
export const MAX_STARTUP_PACKET_LENGTH = 10000;

/** Request codes that take the place of a protocol version in the startup phase. */
export const CANCEL_REQUEST_CODE = 80877102; // 1234.5678
export const NEGOTIATE_SSL_CODE = 80877103; // 1234.5679
export const NEGOTIATE_GSS_CODE = 80877104; // 1234.5680

/** Protocol versions: major in the high 16 bits, minor in the low 16 bits. */
export const PROTOCOL_MAJOR_SUPPORTED = 3;
export const PROTOCOL_MINOR_LATEST = 2; // 3.2, PostgreSQL 18
export const PROTOCOL_3_0 = 196608;
export const PROTOCOL_3_2 = 196610;

/**
 * CancelRequest: length, code, process id, then a secret key of 4 bytes (3.0)
 * or up to 256 bytes (3.2, MAX_CANCEL_KEY_LENGTH).
 */
export const CANCEL_REQUEST_MIN_LENGTH = 16;
export const MAX_CANCEL_KEY_LENGTH = 256;
export const CANCEL_REQUEST_MAX_LENGTH = 12 + MAX_CANCEL_KEY_LENGTH;

/** Normal-phase frame header: 1 type byte and a 4-byte length that counts itself. */
export const FRAME_HEADER_LENGTH = 5;
export const MIN_FRAME_LENGTH = 4;

/**
 * Per-message limits the backend applies in SocketBackend() (postgres.c): messages that carry
 * user data may be large; the others are small (PQ_SMALL_MESSAGE_LIMIT).
 */
export const PQ_SMALL_MESSAGE_LIMIT = 10000;
export const PQ_LARGE_MESSAGE_LIMIT = 0x3fffffff - 1; // MaxAllocSize - 1
/** Password, SASL and GSS responses (PG_MAX_AUTH_TOKEN_LENGTH). */
export const PG_MAX_AUTH_TOKEN_LENGTH = 65535;

/** Frontend message types: the only type bytes a client may send after startup. */
export const enum FrontendType {
  Bind = 0x42, // B
  Close = 0x43, // C
  CopyData = 0x64, // d
  CopyDone = 0x63, // c
  CopyFail = 0x66, // f
  Describe = 0x44, // D
  Execute = 0x45, // E
  Flush = 0x48, // H
  FunctionCall = 0x46, // F
  Parse = 0x50, // P
  PasswordMessage = 0x70, // p (also SASLInitialResponse, SASLResponse, GSSResponse)
  Query = 0x51, // Q
  Sync = 0x53, // S
  Terminate = 0x58, // X
}

/** Backend message types the bridge looks at. */
export const enum BackendType {
  Authentication = 0x52, // R
  CommandComplete = 0x43, // C
  CopyInResponse = 0x47, // G
  CopyBothResponse = 0x57, // W
  ErrorResponse = 0x45, // E
  NoticeResponse = 0x4e, // N
  NotificationResponse = 0x41, // A
  ParameterStatus = 0x53, // S
  PortalSuspended = 0x73, // s
  ReadyForQuery = 0x5a, // Z
  BackendKeyData = 0x4b, // K
  NegotiateProtocolVersion = 0x76, // v
}

/** The transaction status in ReadyForQuery. */
export const enum TransactionStatus {
  Idle = 0x49, // I
  InTransaction = 0x54, // T
  Failed = 0x45, // E
}

/** Authentication request codes (the Int32 after 'R'; protocol-message-formats). */
export const enum AuthCode {
  Ok = 0,
  KerberosV5 = 2,
  CleartextPassword = 3,
  MD5Password = 5,
  GSS = 7,
  GSSContinue = 8,
  SSPI = 9,
  SASL = 10,
  SASLContinue = 11,
  SASLFinal = 12,
}

/** The one-byte answers to SSLRequest / GSSENCRequest. */
export const SSL_ACCEPTED = 0x53; // S
export const ENCRYPTION_REFUSED = 0x4e; // N

/** ErrorResponse field codes (protocol-error-fields). */
export const enum ErrorField {
  Severity = 0x53, // S
  SeverityNonLocalized = 0x56, // V
  Code = 0x43, // C
  Message = 0x4d, // M
  Detail = 0x44, // D
  Hint = 0x48, // H
}

/** SQLSTATEs the bridge itself sends (errcodes.txt). */
export const SqlState = {
  ProtocolViolation: '08P01',
  FeatureNotSupported: '0A000',
  SqlclientUnableToEstablishSqlconnection: '08001',
  ConnectionFailure: '08006',
  InvalidAuthorizationSpecification: '28000',
  InsufficientResources: '53000',
  TooManyConnections: '53300',
  ConfigurationLimitExceeded: '53400',
  AdminShutdown: '57P01',
  IdleSessionTimeout: '57P05',
  IdleInTransactionSessionTimeout: '25P03',
  InternalError: 'XX000',
} as const;
export type SqlState = (typeof SqlState)[keyof typeof SqlState];

/** WebSocket close codes (RFC 6455 §7.4.1) the bridge closes with. */
export const CloseCode = {
  Normal: 1000,
  GoingAway: 1001,
  ProtocolError: 1002,
  PolicyViolation: 1008,
  MessageTooBig: 1009,
  InternalError: 1011,
  TryAgainLater: 1013,
  BadGateway: 1014,
} as const;
export type CloseCode = (typeof CloseCode)[keyof typeof CloseCode];

/**
 * Largest messages a server may send while a login is in progress, counting the length bytes
 * (libpq's checks in PQconnectPoll): authentication requests and NegotiateProtocolVersion are
 * small, an ErrorResponse a little larger (MAX_ERRLEN).
 */
export const MAX_AUTH_REQUEST_LENGTH = 2000;
export const MAX_ERRLEN = 30000;

/** Names are truncated to NAMEDATALEN - 1 bytes (pg_config_manual.h), the startup packet's user and database too. */
export const NAMEDATALEN = 64;
