import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig, type Env } from '../../worker/config.js';
import { chooseRole } from '../../worker/policy/startup-policy.js';

const HYPERDRIVE = {
  host: '3e7bfe54381fd56406ea1a3bc54f172f.hyperdrive.local',
  port: 5432,
  user: 'app',
  password: 'held at the edge',
  database: 'shop',
};
const tokens = { JWT_SECRET: 'x'.repeat(32), JWT_AUDIENCE: 'pgwire-bridge' };

describe('a HYPERDRIVE binding', () => {
  it("is the one target, reached without TLS, and its credential is bound to Hyperdrive's host and port", () => {
    const config = loadConfig({ HYPERDRIVE, ...tokens });
    expect(config).toMatchObject({ host: HYPERDRIVE.host, port: 5432, targets: null, tls: 'off' });
    const target = { host: HYPERDRIVE.host, port: 5432 };
    expect(chooseRole(config, {}, target)).toEqual({ role: 'app', password: 'held at the edge' });
    expect(chooseRole(config, {}, { host: 'db.example.com', port: 5432 })).toMatchObject({
      code: 'CREDENTIAL_NOT_FOR_TARGET',
    });
  });

  it("lets sessions reach the binding's database only, unless ALLOWED_DATABASES says otherwise", () => {
    const config = loadConfig({ HYPERDRIVE, ...tokens });
    expect(config.allowedDatabase('shop')).toBe(true);
    expect(config.allowedDatabase('postgres')).toBe(false);
    expect(config.allowedDatabase('shop_archive')).toBe(false);
    const widened = loadConfig({ HYPERDRIVE, ...tokens, ALLOWED_DATABASES: 'shop, shop_*' });
    expect(widened.allowedDatabase('shop_archive')).toBe(true);
    expect(widened.allowedDatabase('postgres')).toBe(false);
    // Without Hyperdrive the default is every database, as before.
    expect(loadConfig({ PG_HOST: 'db' }).allowedDatabase('postgres')).toBe(true);
  });

  it('keeps PG_TLS when it is set', () => {
    expect(loadConfig({ HYPERDRIVE, ...tokens, PG_TLS: 'require' }).tls).toBe('require');
  });

  it.each<[Env, RegExp]>([
    [{ HYPERDRIVE }, /HYPERDRIVE needs token checks/],
    [{ HYPERDRIVE, ...tokens, PG_HOST: 'db' }, /PG_HOST must not be set with a HYPERDRIVE binding/],
    [{ HYPERDRIVE, ...tokens, PG_TARGETS: 'db:5432' }, /PG_TARGETS must not be set/],
    [{ HYPERDRIVE, ...tokens, PG_CREDENTIALS: '{"a":"b"}' }, /PG_CREDENTIALS must not be set/],
    [{ HYPERDRIVE: { ...HYPERDRIVE, database: '' }, ...tokens }, /HYPERDRIVE has no database/],
  ])('refuses %j', (env, problem) => {
    expect(() => loadConfig(env)).toThrow(ConfigError);
    expect(() => loadConfig(env)).toThrow(problem);
  });
});
