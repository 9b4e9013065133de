import { describe, expect, it } from 'vitest';
import { loadConfig, type Env } from '../../worker/config.js';
import { chooseRole } from '../../worker/policy/startup-policy.js';
import { BridgeError } from '../../worker/protocol/errors.js';

const jwt = { JWT_SECRET: 'x'.repeat(32), JWT_AUDIENCE: 'a', JWT_ROLE_CLAIM: 'role' };
const refusal = (result: unknown) => (result instanceof BridgeError ? [result.code, result.sqlState] : result);

describe('chooseRole', () => {
  const config = loadConfig({
    ...jwt,
    PG_TARGETS: 'db1.internal:5432, db2.internal:5432, 10.0.0.7:6432',
    PG_CREDENTIALS: JSON.stringify({
      writer: { password: 'w', targets: ['db1.internal:5432'] },
      reader: { password: 'r', targets: ['db1.internal:5432', '10.0.0.7:6432'] },
    }),
  } satisfies Env);

  it('gives the role the token names, with its password, for a target the credential names', () => {
    expect(chooseRole(config, { role: 'writer' }, { host: 'db1.internal', port: 5432 })).toEqual({
      role: 'writer',
      password: 'w',
    });
    expect(chooseRole(config, { role: 'reader' }, { host: '10.0.0.7', port: 6432 })).toEqual({
      role: 'reader',
      password: 'r',
    });
  });

  it('refuses with CREDENTIAL_NOT_FOR_TARGET (28000) a target the credential does not name', () => {
    for (const target of [
      { host: 'db2.internal', port: 5432 },
      { host: '10.0.0.7', port: 6432 },
      { host: 'db1.internal', port: 6432 },
    ]) {
      expect(refusal(chooseRole(config, { role: 'writer' }, target))).toEqual(['CREDENTIAL_NOT_FOR_TARGET', '28000']);
    }
  });

  it('refuses a role the configuration does not hold, or no role, with 28000', () => {
    const target = { host: 'db1.internal', port: 5432 };
    expect(refusal(chooseRole(config, { role: 'postgres' }, target))).toEqual(['ROLE_NOT_ALLOWED', '28000']);
    expect(refusal(chooseRole(config, {}, target))).toEqual(['ROLE_NOT_ALLOWED', '28000']);
  });

  it('binds the older shape to the fixed PG_HOST, however it is spelt', () => {
    const fixed = loadConfig({ PG_HOST: 'DB1.internal.', ...jwt, PG_CREDENTIALS: '{"app":"pw"}' });
    expect(chooseRole(fixed, { role: 'app' }, { host: fixed.host, port: fixed.port })).toEqual({
      role: 'app',
      password: 'pw',
    });
    expect(refusal(chooseRole(fixed, { role: 'app' }, { host: 'db2.internal', port: 5432 }))).toEqual([
      'CREDENTIAL_NOT_FOR_TARGET',
      '28000',
    ]);
  });

  it('is null without edge-held credentials', () => {
    expect(chooseRole(loadConfig({ PG_HOST: 'h' }), null, { host: 'h', port: 5432 })).toBeNull();
  });
});
