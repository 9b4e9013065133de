import type { BridgeConfig } from '../config.js';
import { BridgeError } from '../protocol/errors.js';
import { postgresName, type StartupMessage } from '../protocol/startup.js';
import { canonicalHost, type Target } from './targets.js';

/** Token claims, when the client presented a verified token. */
export type Claims = Readonly<Record<string, unknown>>;

/** PostgreSQL's own reading of a boolean-or-database `replication` parameter: anything but false starts a walsender. */
const NOT_REPLICATION = new Set(['false', 'off', 'no', '0']);

/**
 * Decides whether a valid StartupMessage may go on to PostgreSQL: allowed user and database,
 * no replication unless allowed, and the user the token names. Null when it may; otherwise the
 * refusal, which PostgreSQL would also give as 28000 (invalid_authorization_specification).
 */
export function checkStartup(message: StartupMessage, config: BridgeConfig, claims: Claims | null): BridgeError | null {
  const replication = message.parameters.findLast(([name]) => name === 'replication')?.[1];
  if (replication !== undefined && !NOT_REPLICATION.has(replication.toLowerCase()) && !config.allowReplication) {
    return new BridgeError('REPLICATION_NOT_ALLOWED', 'replication connections are not allowed through this bridge');
  }
  if (!config.allowedUser(message.user)) {
    return new BridgeError('USER_NOT_ALLOWED', `user "${message.user}" may not connect through this bridge`);
  }
  if (!config.allowedDatabase(message.database)) {
    return new BridgeError(
      'DATABASE_NOT_ALLOWED',
      `database "${message.database}" may not be reached through this bridge`,
    );
  }
  // With edge-held credentials the role comes from chooseRole(), not from the client.
  const claim = config.jwt?.userClaim;
  if (claim !== undefined && config.credentials === null && claims?.[claim] !== message.user) {
    return new BridgeError('USER_NOT_ALLOWED', `user "${message.user}" is not the user the token was issued for`);
  }
  return null;
}

/** The role and password the bridge logs in with, when it holds the credentials (PG_CREDENTIALS). */
export interface EdgeLogin {
  readonly role: string;
  readonly password: string;
}

/**
 * With edge-held credentials, the role is the one the token's JWT_ROLE_CLAIM names, if
 * PG_CREDENTIALS has it, or else the only role there is; the client's own user is ignored. The
 * credential is only for the targets it names: any other target is refused
 * (CREDENTIAL_NOT_FOR_TARGET), so the bridge never proves the password to a server it was not
 * meant for. Null without edge-held credentials.
 */
export function chooseRole(
  config: BridgeConfig,
  claims: Claims | null,
  target: Target,
): EdgeLogin | BridgeError | null {
  if (config.credentials === null) return null;
  let role: unknown = config.credentials.keys().next().value;
  if (config.roleClaim !== null) {
    role = claims?.[config.roleClaim];
    if (typeof role !== 'string') return new BridgeError('ROLE_NOT_ALLOWED', 'the token names no database role');
  }
  const credential = config.credentials.get(role as string);
  if (credential === undefined) {
    return new BridgeError('ROLE_NOT_ALLOWED', `role "${String(role)}" may not be used through this bridge`);
  }
  const host = canonicalHost(target.host) ?? target.host.toLowerCase();
  if (!credential.targets.some((bound) => bound.host === host && bound.port === target.port)) {
    return new BridgeError(
      'CREDENTIAL_NOT_FOR_TARGET',
      `role "${String(role)}" may not be used with the database server this session asked for`,
    );
  }
  return { role: role as string, password: credential.password };
}

/** The client's StartupMessage with the bridge's role in place of the client's user. */
export function withRole(message: StartupMessage, role: string): StartupMessage {
  return {
    ...message,
    user: role,
    database: postgresName(message.parameters.findLast(([name]) => name === 'database')?.[1] || role),
    parameters: message.parameters.map(([name, value]) => [name, name === 'user' ? role : value] as const),
  };
}
