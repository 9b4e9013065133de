import { SignJWT, type JWTPayload } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { startBridge, type RunningBridge } from '../../dev/bridge.js';
import type { Env } from '../../worker/config.js';
import { bridgeClient, directClient, postgres } from '../support/clients.js';
import { startFakePostgres, type FakeLogin } from '../support/fake-postgres.js';
import { startRecordingProxy } from '../support/recording-proxy.js';

// The real PostgreSQL is reached through a recording proxy (plain TCP), fakes directly.
let real: Awaited<ReturnType<typeof startRecordingProxy>>;
const stops: Array<() => Promise<void>> = [];
const SECRET = 'a-shared-secret-of-at-least-32-characters';
const AUDIENCE = 'edge-credentials-tests';
const token = (claims: JWTPayload) =>
  new SignJWT(claims)
    .setProtectedHeader({ alg: 'HS256' })
    .setAudience(AUDIENCE)
    .setExpirationTime('5m')
    .sign(new TextEncoder().encode(SECRET));

beforeAll(async () => {
  real = await startRecordingProxy(postgres());
});
afterAll(async () => {
  await Promise.all(stops.map((stop) => stop()));
  await real?.stop();
});

async function bridge(bindings: Env): Promise<RunningBridge> {
  const started = await startBridge({
    bindings: { PG_TLS: 'off', JWT_SECRET: SECRET, JWT_AUDIENCE: AUDIENCE, ...bindings },
  });
  stops.push(() => started.stop());
  return started;
}

async function fake(login: FakeLogin, password = 'fake-password') {
  const started = await startFakePostgres(password, login);
  stops.push(started.stop);
  return started;
}

async function createRole(name: string, password: string): Promise<void> {
  const admin = directClient();
  await admin.connect();
  const quoted = `"${name.replaceAll('"', '""')}"`;
  await admin.query(`DROP ROLE IF EXISTS ${quoted}`);
  await admin.query(`CREATE ROLE ${quoted} LOGIN PASSWORD '${password.replaceAll("'", "''")}'`);
  await admin.end();
}

/** A pg client with no password at all: it would fail if a SCRAM challenge reached it. */
const passwordless = (url: string, config = {}) =>
  bridgeClient(url, { user: 'ignored-by-the-bridge', password: undefined as never, ...config });

const realTarget = () => `127.0.0.1:${real.port}`;

describe('SCRAM at the edge against the real server', () => {
  it.each([
    ['U+00AA, U+00A0 and a ligature (SASLprep maps and normalises them)', '\u00aa\u00a0pass\ufb01x', null],
    ['the same password written in its normalised form', 'a pass\ufb01x', 'a passfix'],
    ['a prohibited character (PostgreSQL falls back to the raw password)', '\u00e9\u0007pw', null],
    ['right-to-left text that fails the bidi rule (raw password)', '\u0627\u0031', null],
  ])('logs in with a password containing %s', async (_, serverPassword, edgePassword) => {
    await createRole('edge_intl', serverPassword);
    const b = await bridge({
      PG_HOST: '127.0.0.1',
      PG_PORT: String(real.port),
      PG_CREDENTIALS: JSON.stringify({ edge_intl: edgePassword ?? serverPassword }),
    });
    const client = passwordless(`${b.url}?token=${await token({})}`);
    await client.connect();
    expect((await client.query('SELECT current_user AS role')).rows).toEqual([{ role: 'edge_intl' }]);
    await client.end();
  });

  it("still gives the client PostgreSQL's 28P01 for a password SASLprep does not make equal", async () => {
    await createRole('edge_intl', '\u00aa\u00a0pass');
    const b = await bridge({
      PG_HOST: '127.0.0.1',
      PG_PORT: String(real.port),
      PG_CREDENTIALS: JSON.stringify({ edge_intl: '\u00aapass' }),
    });
    await expect(passwordless(`${b.url}?token=${await token({})}`).connect()).rejects.toMatchObject({
      code: '28P01',
    });
  });
});

describe('a server that does not complete SCRAM is not believed', () => {
  it.each([
    ['AuthenticationOk straight away', 'ok-straight-away', 0],
    ['AuthenticationOk without SASLFinal', 'ok-without-final', 2],
    ['a SASLFinal with a wrong signature', 'wrong-signature', 2],
    ['5,000,000 iterations', { iterations: 5_000_000 }, 1],
    ['1 iteration', { iterations: 1 }, 1],
    ['a cleartext password', 'cleartext', 0],
    ['an MD5 password', 'md5', 0],
  ] as Array<[string, FakeLogin, number]>)(
    'ends the login with 08001 on %s, and the client sees none of it',
    async (_, login, saslMessages) => {
      const server = await fake(login);
      const b = await bridge({
        PG_HOST: '127.0.0.1',
        PG_PORT: String(server.port),
        PG_CREDENTIALS: JSON.stringify({ edge_fake: 'fake-password' }),
      });
      const client = passwordless(`${b.url}?token=${await token({})}`);
      const started = Date.now();
      await expect(client.connect()).rejects.toMatchObject({ code: '08001', severity: 'FATAL' });
      expect(Date.now() - started).toBeLessThan(2000);
      const [connection] = server.connections;
      expect(connection!.startup.user).toBe('edge_fake');
      // SASLInitialResponse, then SASLResponse only for a challenge within bounds; never a password.
      expect(connection!.messages.filter((type) => type === 'p')).toHaveLength(saslMessages);
    },
  );

  it('logs in against the honest fake, to show the fake is a fair test', async () => {
    const server = await fake('honest');
    const b = await bridge({
      PG_HOST: '127.0.0.1',
      PG_PORT: String(server.port),
      PG_CREDENTIALS: JSON.stringify({ edge_fake: 'fake-password' }),
    });
    const client = passwordless(`${b.url}?token=${await token({})}`);
    await client.connect();
    await client.end();
    expect(server.connections[0]!.messages.filter((type) => type === 'p')).toHaveLength(2);
  });
});

describe('credentials bound to their servers', () => {
  const bound = async () => {
    const server = await fake('honest');
    const b = await bridge({
      PG_TARGETS: `${realTarget()}, 127.0.0.1:${server.port}`,
      JWT_ROLE_CLAIM: 'role',
      PG_CREDENTIALS: JSON.stringify({
        edge_bound: { password: 'bound-password', targets: [realTarget()] },
        edge_fake: { password: 'fake-password', targets: [`127.0.0.1:${server.port}`] },
      }),
    });
    return { server, b };
  };

  beforeAll(() => createRole('edge_bound', 'bound-password'));

  it('never uses a credential against a target it is not bound to: 28000, and the other server hears nothing', async () => {
    const { server, b } = await bound();
    const before = real.connections.length;
    const toFake = passwordless(`${b.url}?token=${await token({ role: 'edge_bound' })}`, {
      host: '127.0.0.1',
      port: server.port,
    });
    await expect(toFake.connect()).rejects.toMatchObject({ code: '28000', severity: 'FATAL' });
    const toReal = passwordless(`${b.url}?token=${await token({ role: 'edge_fake' })}`, {
      host: '127.0.0.1',
      port: real.port,
    });
    await expect(toReal.connect()).rejects.toMatchObject({ code: '28000', severity: 'FATAL' });
    expect(server.connections).toHaveLength(0);
    expect(real.connections.length).toBe(before);
  });

  it('uses a credential against the target it is bound to', async () => {
    const { b } = await bound();
    const client = passwordless(`${b.url}?token=${await token({ role: 'edge_bound' })}`, {
      host: '127.0.0.1',
      port: real.port,
    });
    await client.connect();
    expect((await client.query('SELECT current_user AS role')).rows).toEqual([{ role: 'edge_bound' }]);
    await client.end();
    const sent = Buffer.concat(real.connections.at(-1)!.toServer);
    expect(sent.includes('SCRAM-SHA-256')).toBe(true);
  });

  it('refuses the older PG_CREDENTIALS shape with PG_TARGETS: the upgrade gets 500', async () => {
    const b = await bridge({ PG_TARGETS: realTarget(), PG_CREDENTIALS: JSON.stringify({ edge_bound: 'pw' }) });
    const status = await new Promise<number>((resolve, reject) => {
      const ws = new WebSocket(b.url);
      ws.on('open', () => resolve(101));
      ws.on('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
      ws.on('error', reject);
    });
    expect(status).toBe(500);
  });
});

describe('a Hyperdrive binding', () => {
  it("reaches the binding's database only: another gets 28000 before any TCP, and the binding's is served", async () => {
    await createRole('edge_hyperdrive', 'hyperdrive-password');
    const db = postgres();
    const started = await startBridge({
      bindings: { JWT_SECRET: SECRET, JWT_AUDIENCE: AUDIENCE },
      hyperdrive: `postgresql://edge_hyperdrive:hyperdrive-password@127.0.0.1:${real.port}/${db.database}`,
    });
    stops.push(() => started.stop());
    const url = `${started.url}?token=${await token({})}`;
    const before = real.connections.length;
    const elsewhere = passwordless(url, { database: 'template1' });
    await expect(elsewhere.connect()).rejects.toMatchObject({
      code: '28000',
      severity: 'FATAL',
      message: 'database "template1" may not be reached through this bridge',
    });
    expect(real.connections.length).toBe(before);
    const client = passwordless(url, { database: db.database });
    await client.connect();
    expect((await client.query('SELECT current_user AS role, current_database() AS db')).rows).toEqual([
      { role: 'edge_hyperdrive', db: db.database },
    ]);
    await client.end();
  });
});

describe('names judged as PostgreSQL uses them', () => {
  const BOM = '\ufeff';
  const LONG_DATABASE = `${'s'.repeat(63)}_public`;

  beforeAll(async () => {
    await createRole(`${BOM}app_x`, 'bom-password');
    const admin = directClient();
    await admin.connect();
    await admin.query(`DROP DATABASE IF EXISTS "${'s'.repeat(63)}"`);
    await admin.query(`CREATE DATABASE "${'s'.repeat(63)}"`);
    await admin.end();
  });

  const plainBridge = (bindings: Env) =>
    bridge({ PG_HOST: '127.0.0.1', PG_PORT: String(real.port), JWT_SECRET: '', JWT_AUDIENCE: '', ...bindings });

  it('judges a BOM-prefixed user as PostgreSQL logs it in', async () => {
    const refused = await plainBridge({ ALLOWED_USERS: 'app_*' });
    const before = real.connections.length;
    const asBom = (url: string) => bridgeClient(url, { user: `${BOM}app_x`, password: 'bom-password' });
    await expect(asBom(refused.url).connect()).rejects.toMatchObject({ code: '28000' });
    expect(real.connections.length).toBe(before);

    // (A pattern's surrounding whitespace is trimmed, and JavaScript counts U+FEFF as whitespace.)
    const admitted = await plainBridge({ ALLOWED_USERS: '*app_x' });
    const client = asBom(admitted.url);
    await client.connect();
    expect((await client.query('SELECT current_user AS role')).rows).toEqual([{ role: `${BOM}app_x` }]);
    await client.end();
  });

  it('does not match a BOM-prefixed user to a token for the name without it', async () => {
    const b = await bridge({ PG_HOST: '127.0.0.1', PG_PORT: String(real.port), JWT_USER_CLAIM: 'pg_user' });
    const before = real.connections.length;
    const client = bridgeClient(`${b.url}?token=${await token({ pg_user: 'app_x' })}`, {
      user: `${BOM}app_x`,
      password: 'bom-password',
    });
    await expect(client.connect()).rejects.toMatchObject({ code: '28000' });
    expect(real.connections.length).toBe(before);
  });

  it('judges a database name truncated to 63 bytes, as PostgreSQL connects to it', async () => {
    const refused = await plainBridge({ ALLOWED_DATABASES: '*_public' });
    const before = real.connections.length;
    await expect(bridgeClient(refused.url, { database: LONG_DATABASE }).connect()).rejects.toMatchObject({
      code: '28000',
    });
    expect(real.connections.length).toBe(before);

    const admitted = await plainBridge({ ALLOWED_DATABASES: 's*' });
    const client = bridgeClient(admitted.url, { database: LONG_DATABASE });
    await client.connect();
    const { rows } = await client.query('SELECT current_database() AS database');
    expect(rows).toEqual([{ database: 's'.repeat(63) }]);
    await client.end();
  });
});
