import { describe, expect, it } from 'vitest';
import { configProblems } from '../support/config-problems.js';
import { ConfigError, loadConfig, type Env } from '../../worker/config.js';

describe('loadConfig', () => {
  it('applies the documented defaults', () => {
    const config = loadConfig({ PG_HOST: 'db.internal' });
    expect(config).toMatchObject({
      host: 'db.internal',
      port: 5432,
      tls: 'require',
      flowControl: 'require',
      maxMessageBytes: 0x3fffffff - 1,
      connectTimeoutMs: 10000,
      startupTimeoutMs: 10000,
      loginTimeoutMs: 15_000,
      idleTimeoutMs: 900_000,
      idleInTransactionTimeoutMs: 300_000,
      tokenExpiryGraceMs: 0,
      maxSessions: 128,
      maxLoginsInProgress: 32,
      isolateBudgetBytes: 48 * 1024 * 1024,
      windowToClientBytes: 24 * 1024 * 1024,
      stalledClientTimeoutMs: 60_000,
      maxSessionMs: 86_400_000,
      allowReplication: false,
      jwt: null,
    });
    // No browser origin is allowed until one is configured; any user and database are.
    expect(config.allowedOrigin('https://app.example.com')).toBe(false);
    expect(config.allowedUser('anyone')).toBe(true);
    expect(config.allowedDatabase('anything')).toBe(true);
  });

  it('reads every setting', () => {
    const config = loadConfig({
      PG_HOST: '10.0.0.5',
      PG_PORT: '6543',
      PG_TLS: 'off',
      FLOW_CONTROL: 'offer',
      MAX_MESSAGE_BYTES: '1048576',
      LOGIN_TIMEOUT_MS: '3000',
      IDLE_IN_TRANSACTION_TIMEOUT_MS: '0',
      TOKEN_EXPIRY_GRACE_MS: '5000',
      MAX_SESSIONS: '10',
      MAX_LOGINS_IN_PROGRESS: '2',
      ISOLATE_BUDGET_BYTES: '8388608',
      WINDOW_TO_CLIENT_BYTES: '1048576',
      STALLED_CLIENT_TIMEOUT_MS: '0',
      CONNECT_TIMEOUT_MS: '2500',
      STARTUP_TIMEOUT_MS: '500',
      IDLE_TIMEOUT_MS: '0',
      MAX_SESSION_MS: '60000',
      ALLOWED_ORIGINS: 'https://app.example.com, https://*.example.org',
      ALLOWED_USERS: 'app_*, reporting',
      ALLOWED_DATABASES: 'shop',
      ALLOW_REPLICATION: 'true',
      JWT_SECRET: 'x'.repeat(32),
      JWT_AUDIENCE: 'pgwire-bridge',
      JWT_ISSUER: 'https://auth.example.com',
      JWT_USER_CLAIM: 'pg_user',
    });
    expect(config).toMatchObject({
      host: '10.0.0.5',
      port: 6543,
      tls: 'off',
      flowControl: 'offer',
      maxMessageBytes: 1048576,
      loginTimeoutMs: 3000,
      idleInTransactionTimeoutMs: 0,
      tokenExpiryGraceMs: 5000,
      maxSessions: 10,
      maxLoginsInProgress: 2,
      isolateBudgetBytes: 8388608,
      windowToClientBytes: 1048576,
      stalledClientTimeoutMs: 0,
      connectTimeoutMs: 2500,
      startupTimeoutMs: 500,
      idleTimeoutMs: 0,
      maxSessionMs: 60000,
      allowReplication: true,
      jwt: {
        secret: 'x'.repeat(32),
        audience: 'pgwire-bridge',
        issuer: 'https://auth.example.com',
        userClaim: 'pg_user',
      },
    });
    expect(['https://app.example.com', 'https://eu.example.org', 'https://evil.com'].map(config.allowedOrigin)).toEqual(
      [true, true, false],
    );
    expect(['app_web', 'reporting', 'postgres'].map(config.allowedUser)).toEqual([true, true, false]);
    expect(['shop', 'postgres'].map(config.allowedDatabase)).toEqual([true, false]);
  });

  it('lists every problem at once', () => {
    try {
      loadConfig({
        PG_PORT: '70000',
        PG_TLS: 'maybe',
        FLOW_CONTROL: 'always',
        MAX_MESSAGE_BYTES: '3',
        CONNECT_TIMEOUT_MS: 'soon',
        STARTUP_TIMEOUT_MS: '0',
        ALLOWED_ORIGINS: 'app.example.com',
        ALLOW_REPLICATION: 'yes',
        WINDOW_TO_CLIENT_BYTES: '1000',
        JWT_SECRET: 'short',
      });
      expect.unreachable();
    } catch (error) {
      expect(error).toBeInstanceOf(ConfigError);
      // PG_HOST, PG_PORT, PG_TLS, FLOW_CONTROL, MAX_MESSAGE_BYTES, CONNECT_TIMEOUT_MS,
      // STARTUP_TIMEOUT_MS, ALLOWED_ORIGINS, ALLOW_REPLICATION, WINDOW_TO_CLIENT_BYTES, JWT_AUDIENCE, JWT_SECRET
      expect((error as ConfigError).problems).toHaveLength(12);
      expect((error as ConfigError).problems).toContain(
        'WINDOW_TO_CLIENT_BYTES must be an integer from 262144 to 67108864',
      );
      expect((error as ConfigError).problems).toContain('FLOW_CONTROL must be "offer" or "require"');
    }
  });

  it('refuses more than one kind of token key', () => {
    expect(() =>
      loadConfig({ PG_HOST: 'h', JWT_SECRET: 'x'.repeat(32), JWT_JWKS_URL: 'https://a/jwks', JWT_AUDIENCE: 'a' }),
    ).toThrow(ConfigError);
  });

  it('takes edge-held credentials only together with token checks, and a role claim for several roles', () => {
    const jwt = { JWT_SECRET: 'x'.repeat(32), JWT_AUDIENCE: 'a' };
    const one = loadConfig({ PG_HOST: 'h', ...jwt, PG_CREDENTIALS: '{"app":"pw"}' });
    expect([...one.credentials!.entries()]).toEqual([
      ['app', { password: 'pw', targets: [{ host: 'h', port: 5432 }] }],
    ]);
    expect(one.roleClaim).toBeNull();
    for (const bad of [
      { PG_HOST: 'h', PG_CREDENTIALS: '{"app":"pw"}' },
      { PG_HOST: 'h', ...jwt, PG_CREDENTIALS: '{"app":"pw","ops":"pw2"}' },
      // Blank is no claim: every token would get the first role.
      { PG_HOST: 'h', ...jwt, JWT_ROLE_CLAIM: ' ', PG_CREDENTIALS: '{"app":"pw","ops":"pw2"}' },
      { PG_HOST: 'h', ...jwt, PG_CREDENTIALS: '["app"]' },
      { PG_HOST: 'h', ...jwt, PG_CREDENTIALS: '{"app":""}' },
      { PG_HOST: 'h', ...jwt, PG_CREDENTIALS: 'not json' },
    ]) {
      expect(() => loadConfig(bad)).toThrow(ConfigError);
    }
  });

  describe('PG_CREDENTIALS binds each password to its servers', () => {
    const jwt = { JWT_SECRET: 'x'.repeat(32), JWT_AUDIENCE: 'a', JWT_ROLE_CLAIM: 'role' };

    it('binds the older shape to a fixed PG_HOST, and the new shape to the targets it names', () => {
      const fixed = loadConfig({ PG_HOST: 'DB.internal', PG_PORT: '6432', ...jwt, PG_CREDENTIALS: '{"app":"pw"}' });
      expect(fixed.credentials!.get('app')).toEqual({ password: 'pw', targets: [{ host: 'db.internal', port: 6432 }] });
      const named = loadConfig({
        PG_TARGETS: 'db1.internal:5432, *.replicas.internal:5432',
        ...jwt,
        PG_CREDENTIALS: JSON.stringify({
          writer: { password: 'w', targets: ['db1.internal:5432'] },
          reader: { password: 'r', targets: ['a.replicas.internal:5432', 'DB1.internal:5432'] },
        }),
      });
      expect(named.credentials!.get('reader')!.targets).toEqual([
        { host: 'a.replicas.internal', port: 5432 },
        { host: 'db1.internal', port: 5432 },
      ]);
      const newShapeFixed = loadConfig({
        PG_HOST: 'db1.internal',
        ...jwt,
        PG_CREDENTIALS: '{"app":{"password":"pw"}}',
      });
      expect(newShapeFixed.credentials!.get('app')!.targets).toEqual([{ host: 'db1.internal', port: 5432 }]);
    });

    it.each([
      ['the older shape with PG_TARGETS', { PG_TARGETS: 'db1.internal:5432', PG_CREDENTIALS: '{"app":"pw"}' }],
      ['no targets with PG_TARGETS', { PG_TARGETS: 'db1.internal:5432', PG_CREDENTIALS: '{"app":{"password":"pw"}}' }],
      [
        'a target PG_TARGETS does not allow',
        {
          PG_TARGETS: 'db1.internal:5432',
          PG_CREDENTIALS: '{"app":{"password":"pw","targets":["db2.internal:5432"]}}',
        },
      ],
      [
        'a target other than PG_HOST',
        { PG_HOST: 'db1.internal', PG_CREDENTIALS: '{"app":{"password":"pw","targets":["db1.internal:6432"]}}' },
      ],
      [
        'a wildcard target',
        {
          PG_TARGETS: '*.replicas.internal:5432',
          PG_CREDENTIALS: '{"app":{"password":"pw","targets":["*.replicas.internal:5432"]}}',
        },
      ],
      ['an empty target list', { PG_HOST: 'h', PG_CREDENTIALS: '{"app":{"password":"pw","targets":[]}}' }],
      ['a misspelt key', { PG_HOST: 'h', PG_CREDENTIALS: '{"app":{"password":"pw","target":["h:5432"]}}' }],
      ['a password with a lone surrogate', { PG_HOST: 'h', PG_CREDENTIALS: '{"app":"pw\\ud800"}' }],
      ['a password with NUL', { PG_HOST: 'h', PG_CREDENTIALS: '{"app":"p\\u0000w"}' }],
    ])('refuses %s', (_, env) => {
      expect(configProblems({ ...jwt, ...env } as Env)).toEqual([expect.stringMatching(/^PG_CREDENTIALS/)]);
    });

    it('says how to write the new shape when PG_TARGETS is set', () => {
      const [problem] = configProblems({ ...jwt, PG_TARGETS: 'db1.internal:5432', PG_CREDENTIALS: '{"app":"pw"}' });
      expect(problem).toContain('{"app": {"password": "…", "targets": ["host:port"]}}');
    });
  });

  it('takes a SCRAM iteration range, 4096 to 100000 by default', () => {
    expect(loadConfig({ PG_HOST: 'h' }).scramIterations).toEqual({ minIterations: 4096, maxIterations: 100_000 });
    const wide = loadConfig({ PG_HOST: 'h', SCRAM_MIN_ITERATIONS: '10000', SCRAM_MAX_ITERATIONS: '600000' });
    expect(wide.scramIterations).toEqual({ minIterations: 10_000, maxIterations: 600_000 });
    for (const bad of [
      { SCRAM_MIN_ITERATIONS: '0' },
      { SCRAM_MAX_ITERATIONS: '20000000' },
      { SCRAM_MIN_ITERATIONS: '8192', SCRAM_MAX_ITERATIONS: '4096' },
    ]) {
      expect(() => loadConfig({ PG_HOST: 'h', ...bad })).toThrow(ConfigError);
    }
  });

  it('takes one fixed target or an allowlist, not both and not neither', () => {
    expect(loadConfig({ PG_TARGETS: 'db.example.com:5432' }).targets).toHaveLength(1);
    expect(() => loadConfig({ PG_HOST: 'h', PG_TARGETS: 'db.example.com:5432' })).toThrow(ConfigError);
    expect(() => loadConfig({})).toThrow(ConfigError);
  });
});
