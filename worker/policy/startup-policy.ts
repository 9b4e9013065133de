import type { BridgeConfig } from '../config.js';
import { BridgeError } from '../protocol/errors.js';
import type { StartupMessage } from '../protocol/startup.js';

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
  const claim = config.jwt?.userClaim;
  if (claim !== undefined && claims?.[claim] !== message.user) {
    return new BridgeError('USER_NOT_ALLOWED', `user "${message.user}" is not the user the token was issued for`);
  }
  return null;
}
