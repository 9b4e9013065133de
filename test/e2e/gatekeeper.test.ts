import { createServer, type Server } from 'node:http';
import { exportJWK, exportSPKI, generateKeyPair, SignJWT, type JWTPayload } from 'jose';
import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startBridge, type RunningBridge } from '../../dev/bridge.js';
import type { Env } from '../../worker/config.js';
import type { SocketOptions } from 'pgwire-bridge/client';
import { bridgeClient, directClient, eventually, msUntilBackendGone, postgres } from '../support/clients.js';
import { startRecordingProxy } from '../support/recording-proxy.js';
import { FLOW_CONTROL_PROTOCOL } from '../../common/subprotocols.js';

// Every bridge here reaches PostgreSQL through the recording proxy, so a test can show that a
// refusal happened before any TCP connection was opened.
let proxy: Awaited<ReturnType<typeof startRecordingProxy>>;
const bridges: RunningBridge[] = [];
const logs: string[] = [];
const SECRET = 'a-shared-secret-of-at-least-32-characters';
const AUDIENCE = 'pgwire-bridge-tests';

beforeAll(async () => {
  proxy = await startRecordingProxy(postgres());
});
afterAll(async () => {
  await Promise.all(bridges.map((b) => b.stop()));
  await proxy?.stop();
});

async function bridge(bindings: Env): Promise<RunningBridge> {
  const target = bindings.PG_TARGETS ? {} : { PG_HOST: '127.0.0.1', PG_PORT: String(proxy.port) };
  const started = await startBridge({
    bindings: { ...target, PG_TLS: 'off', ...bindings },
    log: (line) => logs.push(line),
  });
  bridges.push(started);
  return started;
}

/** The HTTP status of an upgrade attempt: 101 once the WebSocket is open by the client's rules too. */
function upgradeStatus(url: string, options: { origin?: string; protocols?: string[] } = {}): Promise<number> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, options.protocols ?? [FLOW_CONTROL_PROTOCOL], {
      ...(options.origin && { origin: options.origin }),
    });
    ws.on('open', () => {
      ws.close();
      resolve(101);
    });
    ws.on('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
    ws.on('error', reject);
  });
}

function hs256(
  claims: JWTPayload,
  options: { expiresIn?: string | number; notBefore?: string | number; audience?: string } = {},
) {
  return new SignJWT(claims)
    .setProtectedHeader({ alg: 'HS256' })
    .setAudience(options.audience ?? AUDIENCE)
    .setIssuedAt()
    .setExpirationTime(options.expiresIn ?? '5m')
    .setNotBefore(options.notBefore ?? 0)
    .sign(new TextEncoder().encode(SECRET));
}

async function query(url: string): Promise<unknown> {
  const client = bridgeClient(url);
  await client.connect();
  const { rows } = await client.query('SELECT 1 AS ok');
  await client.end();
  return rows;
}

describe('targets', () => {
  it('connects to a target the allowlist names, and refuses hostile ones with 28000 before any TCP', async () => {
    const b = await bridge({ PG_TARGETS: `db.example.com:5432, 127.0.0.1:${proxy.port}` });
    const allowed = bridgeClient(b.url, { host: '127.0.0.1', port: proxy.port });
    await allowed.connect();
    expect((await allowed.query('SELECT 1 AS ok')).rows).toEqual([{ ok: 1 }]);
    await allowed.end();

    const before = proxy.connections.length;
    const hostile: Array<[string, number]> = [
      ['localhost', proxy.port],
      ['127.0.0.1', 5432],
      ['169.254.169.254', 80],
      ['2130706433', proxy.port],
      ['127.1', proxy.port],
      ['0x7f.0.0.1', proxy.port],
      ['[::ffff:127.0.0.2]', proxy.port],
      ['[::1]', proxy.port],
      ['10.0.0.1', 5432],
      ['evil.example.com', 5432],
    ];
    for (const [host, port] of hostile) {
      const client = bridgeClient(b.url, { host, port });
      await expect(client.connect(), `${host}:${port}`).rejects.toMatchObject({ code: '28000', severity: 'FATAL' });
    }
    expect(proxy.connections.length).toBe(before);
  });
});

describe('flow control', () => {
  it('by default refuses clients that do not take part, with 400 and before any TCP', async () => {
    const b = await bridge({});
    const before = proxy.connections.length;
    expect(await upgradeStatus(b.url, { protocols: [] })).toBe(400);
    expect(await upgradeStatus(b.url, { protocols: ['something-else'] })).toBe(400);
    // A client of the retired v1, whose acknowledgements the bridge could not check.
    expect(await upgradeStatus(b.url, { protocols: ['pgwire-bridge.v1'] })).toBe(400);
    const withoutFlowControl = bridgeClient(b.url, {}, { flowControl: false });
    await expect(withoutFlowControl.connect()).rejects.toMatchObject({ code: 'ECONNREFUSED' });
    expect(proxy.connections.length).toBe(before);
    // The client socket offers flow control by default, and is served.
    expect(await query(b.url)).toEqual([{ ok: 1 }]);
    expect(await upgradeStatus(b.url, { protocols: [FLOW_CONTROL_PROTOCOL] })).toBe(101);
    expect(logs.some((line) => line.includes('"code":"FLOW_CONTROL_REQUIRED"'))).toBe(true);
  });

  it('with FLOW_CONTROL=offer serves clients that do not take part too', async () => {
    const b = await bridge({ FLOW_CONTROL: 'offer' });
    expect(await upgradeStatus(b.url, { protocols: [] })).toBe(101);
    const client = bridgeClient(b.url, {}, { flowControl: false });
    await client.connect();
    expect((await client.query('SELECT 1 AS ok')).rows).toEqual([{ ok: 1 }]);
    await client.end();
  });
});

describe('origins', () => {
  it('refuses every browser origin by default, with 403 before any TCP, and serves clients without one', async () => {
    const b = await bridge({});
    const before = proxy.connections.length;
    expect(await upgradeStatus(b.url, { origin: 'https://app.example.com' })).toBe(403);
    expect(proxy.connections.length).toBe(before);
    expect(await query(b.url)).toEqual([{ ok: 1 }]);
  });

  it('admits only the configured origins', async () => {
    const b = await bridge({ ALLOWED_ORIGINS: 'https://app.example.com' });
    expect(await upgradeStatus(b.url, { origin: 'https://app.example.com' })).toBe(101);
    expect(await upgradeStatus(b.url, { origin: 'https://app.example.com.evil.net' })).toBe(403);
    expect(await upgradeStatus(b.url, { origin: 'null' })).toBe(403);
  });
});

describe('tokens', () => {
  it('refuses a missing, forged, expired, not-yet-valid or wrong-audience token with 401 before any TCP', async () => {
    const b = await bridge({ JWT_SECRET: SECRET, JWT_AUDIENCE: AUDIENCE });
    const forged = await new SignJWT({})
      .setProtectedHeader({ alg: 'HS256' })
      .setAudience(AUDIENCE)
      .setExpirationTime('5m')
      .sign(new TextEncoder().encode('another-secret-of-at-least-32-characters'));
    const unsigned = `${Buffer.from('{"alg":"none"}').toString('base64url')}.${Buffer.from(`{"aud":"${AUDIENCE}","exp":${Math.floor(Date.now() / 1000) + 300}}`).toString('base64url')}.`;
    const before = proxy.connections.length;
    expect(await upgradeStatus(b.url)).toBe(401);
    for (const token of [
      forged,
      unsigned,
      await hs256({}, { expiresIn: Math.floor(Date.now() / 1000) - 10 }),
      await hs256({}, { notBefore: '10m' }),
      await hs256({}, { audience: 'someone-else' }),
      'not-a-jwt',
    ]) {
      expect(await upgradeStatus(`${b.url}?token=${token}`)).toBe(401);
    }
    expect(proxy.connections.length).toBe(before);
  });

  it('admits a valid token in the query string or in a subprotocol', async () => {
    const b = await bridge({ JWT_SECRET: SECRET, JWT_AUDIENCE: AUDIENCE, FLOW_CONTROL: 'offer' });
    const token = await hs256({ sub: 'alice' });
    expect(await query(`${b.url}?token=${token}`)).toEqual([{ ok: 1 }]);
    expect(await upgradeStatus(b.url, { protocols: [`pgwire-bridge.token.${token}`] })).toBe(101);
    // With flow control and without: either way the bridge must answer with a subprotocol the
    // client offered, or browsers and ws drop the connection.
    for (const flowControl of [true, false]) {
      const viaSocketOption = bridgeClient(b.url, {}, { token, flowControl });
      await viaSocketOption.connect();
      expect((await viaSocketOption.query('SELECT 2 AS two')).rows).toEqual([{ two: 2 }]);
      await viaSocketOption.end();
    }
  });

  it('verifies ES256 against an inline public key, and refuses an HS256 token signed with that key', async () => {
    const { publicKey, privateKey } = await generateKeyPair('ES256');
    const pem = await exportSPKI(publicKey);
    const b = await bridge({ JWT_PUBLIC_KEY: pem, JWT_AUDIENCE: AUDIENCE });
    const good = await new SignJWT({})
      .setProtectedHeader({ alg: 'ES256' })
      .setAudience(AUDIENCE)
      .setExpirationTime('5m')
      .sign(privateKey);
    expect(await query(`${b.url}?token=${good}`)).toEqual([{ ok: 1 }]);
    const confused = await new SignJWT({})
      .setProtectedHeader({ alg: 'HS256' })
      .setAudience(AUDIENCE)
      .setExpirationTime('5m')
      .sign(new TextEncoder().encode(pem));
    expect(await upgradeStatus(`${b.url}?token=${confused}`)).toBe(401);
  });

  it('verifies RS256 against keys fetched from a JWKS URL', async () => {
    const { publicKey, privateKey } = await generateKeyPair('RS256');
    const jwk = { ...(await exportJWK(publicKey)), kid: 'k1', alg: 'RS256', use: 'sig' };
    const jwks: Server = createServer((_req, res) => {
      res.setHeader('Content-Type', 'application/json');
      res.end(JSON.stringify({ keys: [jwk] }));
    });
    await new Promise<void>((resolve) => jwks.listen(0, '127.0.0.1', resolve));
    try {
      const url = `http://127.0.0.1:${(jwks.address() as { port: number }).port}/jwks.json`;
      const b = await bridge({ JWT_JWKS_URL: url, JWT_AUDIENCE: AUDIENCE });
      const token = await new SignJWT({})
        .setProtectedHeader({ alg: 'RS256', kid: 'k1' })
        .setAudience(AUDIENCE)
        .setExpirationTime('5m')
        .sign(privateKey);
      expect(await query(`${b.url}?token=${token}`)).toEqual([{ ok: 1 }]);
      const other = await generateKeyPair('RS256');
      const stranger = await new SignJWT({})
        .setProtectedHeader({ alg: 'RS256', kid: 'k1' })
        .setAudience(AUDIENCE)
        .setExpirationTime('5m')
        .sign(other.privateKey);
      expect(await upgradeStatus(`${b.url}?token=${stranger}`)).toBe(401);
    } finally {
      await new Promise((resolve) => jwks.close(resolve));
    }
  });

  it('lets the token name the database user: another user is refused with 28000 before any TCP', async () => {
    const b = await bridge({ JWT_SECRET: SECRET, JWT_AUDIENCE: AUDIENCE, JWT_USER_CLAIM: 'pg_user' });
    expect(await query(`${b.url}?token=${await hs256({ pg_user: postgres().user })}`)).toEqual([{ ok: 1 }]);
    const before = proxy.connections.length;
    const client = bridgeClient(`${b.url}?token=${await hs256({ pg_user: 'someone_else' })}`);
    await expect(client.connect()).rejects.toMatchObject({ code: '28000', severity: 'FATAL' });
    expect(proxy.connections.length).toBe(before);
  });
});

describe('edge-held credentials', () => {
  const CREDENTIALS = JSON.stringify({ edge_reader: 'reader-password', edge_writer: 'writer-password' });
  const edge = (credentials = CREDENTIALS) =>
    bridge({ JWT_SECRET: SECRET, JWT_AUDIENCE: AUDIENCE, JWT_ROLE_CLAIM: 'role', PG_CREDENTIALS: credentials });

  beforeAll(async () => {
    const admin = directClient();
    await admin.connect();
    for (const [role, password] of [
      ['edge_reader', 'reader-password'],
      ['edge_writer', 'writer-password'],
    ]) {
      await admin.query(`DROP ROLE IF EXISTS ${role}`);
      await admin.query(`CREATE ROLE ${role} LOGIN PASSWORD '${password}'`);
    }
    await admin.end();
  });

  /** A pg client with no password at all: it would fail if PostgreSQL's SCRAM challenge reached it. */
  const passwordless = (url: string) =>
    bridgeClient(url, { user: 'ignored-by-the-bridge', password: undefined as never });

  it('logs in with SCRAM at the edge as the role the token names; the client never sees a password', async () => {
    const b = await edge();
    for (const role of ['edge_reader', 'edge_writer']) {
      const client = passwordless(`${b.url}?token=${await hs256({ role })}`);
      await client.connect();
      const { rows } = await client.query('SELECT current_user AS role, 6 * 7 AS answer');
      expect(rows).toEqual([{ role, answer: 42 }]);
      await client.end();
    }
  });

  it("gives the client PostgreSQL's 28P01 when the configured password is wrong", async () => {
    const b = await edge(JSON.stringify({ edge_reader: 'not-the-password' }));
    const client = passwordless(`${b.url}?token=${await hs256({ role: 'edge_reader' })}`);
    await expect(client.connect()).rejects.toMatchObject({ code: '28P01', severity: 'FATAL' });
  });

  it('gives the client 08001 when PostgreSQL stops answering in the middle of the edge login', async () => {
    // PostgreSQL's SCRAM challenge reaches the bridge; nothing after it does.
    const stalling = await startRecordingProxy(postgres(), { serverMessagesBeforeStall: 1 });
    try {
      const b = await bridge({
        JWT_SECRET: SECRET,
        JWT_AUDIENCE: AUDIENCE,
        JWT_ROLE_CLAIM: 'role',
        PG_CREDENTIALS: CREDENTIALS,
        PG_PORT: String(stalling.port),
        CONNECT_TIMEOUT_MS: '500',
      });
      const client = passwordless(`${b.url}?token=${await hs256({ role: 'edge_reader' })}`);
      const started = Date.now();
      await expect(client.connect()).rejects.toMatchObject({
        code: '08001',
        severity: 'FATAL',
        message: 'the database server did not finish authentication in time',
      });
      expect(Date.now() - started).toBeLessThan(3000);
      // The bridge got as far as answering the challenge, then gave up and closed its connection.
      expect(Buffer.concat(stalling.connections[0]!.toServer).includes('SCRAM-SHA-256')).toBe(true);
      await stalling.connections[0]!.closed;
    } finally {
      await stalling.stop();
    }
  });

  it('refuses a role the configuration does not hold with 28000, before any TCP', async () => {
    const b = await edge();
    const before = proxy.connections.length;
    for (const claims of [{ role: postgres().user }, {}]) {
      const client = passwordless(`${b.url}?token=${await hs256(claims)}`);
      await expect(client.connect()).rejects.toMatchObject({ code: '28000', severity: 'FATAL' });
    }
    expect(proxy.connections.length).toBe(before);
  });
});

describe('startup policy', () => {
  it.each([
    ['a user outside ALLOWED_USERS', { ALLOWED_USERS: 'app_*' }, {}],
    ['a database outside ALLOWED_DATABASES', { ALLOWED_DATABASES: 'shop' }, {}],
    ['a replication connection', {}, { replication: 'database' }],
  ])('refuses %s with 28000 before any TCP', async (_, bindings, extra) => {
    const b = await bridge(bindings);
    const before = proxy.connections.length;
    const client = bridgeClient(b.url, extra as never);
    await expect(client.connect()).rejects.toMatchObject({ code: '28000', severity: 'FATAL' });
    expect(proxy.connections.length).toBe(before);
  });
});

describe('limits', () => {
  async function endedBy(bindings: Env, keepBusy: boolean, socket: Partial<SocketOptions> = {}) {
    const b = await bridge(bindings);
    const client = bridgeClient(b.url, {}, socket);
    const errors: Array<Error & { code?: string }> = [];
    client.on('error', (error) => errors.push(error));
    const ended = new Promise((resolve) => client.once('end', resolve));
    await client.connect();
    const { rows } = await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
    let busy = keepBusy;
    const traffic = (async () => {
      while (busy) {
        await client.query('SELECT 1').catch((error: Error) => {
          errors.push(error);
          busy = false;
        });
      }
    })();
    await ended;
    busy = false;
    await traffic;
    const watcher = directClient();
    await watcher.connect();
    await msUntilBackendGone(watcher, rows[0]!.pid, 2000);
    await watcher.end();
    // The first error names why: on the client, or on the query that was running.
    return errors.find((error) => error.code !== undefined) ?? errors[0];
  }

  it('ends a session whose client sends a message above MAX_MESSAGE_BYTES with 08P01, and its backend is gone', async () => {
    const b = await bridge({ MAX_MESSAGE_BYTES: '1000' });
    const client = bridgeClient(b.url);
    const errors: Array<Error & { code?: string }> = [];
    client.on('error', (error) => errors.push(error));
    await client.connect();
    const { rows } = await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
    const tooBig = await client.query(`SELECT '${'x'.repeat(2000)}'`).catch((error: Error) => error);
    expect([tooBig, ...errors].find((e) => (e as { code?: string }).code)).toMatchObject({
      code: '08P01',
      message: 'invalid message length',
    });
    const watcher = directClient();
    await watcher.connect();
    await msUntilBackendGone(watcher, rows[0]!.pid, 2000);
    await watcher.end();
  });

  it('ends an idle session with 57P05, and its backend is gone', async () => {
    expect(await endedBy({ IDLE_TIMEOUT_MS: '400' }, false)).toMatchObject({
      code: '57P05',
      message: 'terminating connection due to idle-session timeout',
    });
  });

  it('does not count keepalives as activity: a session that only keeps alive still ends idle', async () => {
    const started = Date.now();
    expect(await endedBy({ IDLE_TIMEOUT_MS: '600' }, false, { keepAliveMs: 50 })).toMatchObject({
      code: '57P05',
      message: 'terminating connection due to idle-session timeout',
    });
    expect(Date.now() - started).toBeLessThan(3000);
  });

  it('ends a busy session at its maximum length with 57P01, and its backend is gone', async () => {
    expect(await endedBy({ MAX_SESSION_MS: '600' }, true)).toMatchObject({ code: '57P01', severity: 'FATAL' });
  });
});

describe('logs', () => {
  it('write one structured line per session, without passwords, tokens or query text', async () => {
    const b = await bridge({ JWT_SECRET: SECRET, JWT_AUDIENCE: AUDIENCE });
    const token = await hs256({ sub: 'log-test-subject' });
    const client = bridgeClient(`${b.url}?token=${token}`);
    await client.connect();
    await client.query("SELECT 'query-text-marker' AS marker");
    await client.end();

    const all = await eventually(
      async () => logs.join(''),
      (text) => text.includes('"subject":"log-test-subject"'),
    );
    const lines = all
      .split('\n')
      .filter((line) => line.includes('"event":"pgwire-bridge.session"'))
      .map((line) => JSON.parse(line.slice(line.indexOf('{'))));
    const mine = lines.find((line) => line.subject === 'log-test-subject');
    expect(mine).toMatchObject({
      target: `127.0.0.1:${proxy.port}`,
      user: postgres().user,
      database: postgres().database,
      closeCode: 1000,
    });
    expect(mine.bytesToServer).toBeGreaterThan(0);
    expect(mine.bytesToClient).toBeGreaterThan(0);
    expect(mine.frames).toBeGreaterThanOrEqual(4);
    expect(mine.durationMs).toBeGreaterThanOrEqual(0);
    for (const secret of [postgres().password, token, SECRET, 'query-text-marker']) expect(all).not.toContain(secret);
  });

  it('go to a bound Analytics Engine dataset too, without getting in the way of the session', async () => {
    const lines: string[] = [];
    const b = await startBridge({
      bindings: { PG_HOST: '127.0.0.1', PG_PORT: String(proxy.port), PG_TLS: 'off' },
      analyticsEngineDataset: 'pgwire_bridge_sessions',
      log: (line) => lines.push(line),
    });
    bridges.push(b);
    const client = bridgeClient(b.url);
    await client.connect();
    expect((await client.query('SELECT 1 AS ok')).rows).toEqual([{ ok: 1 }]);
    await client.end();
    const logged = await eventually(
      async () => lines.join(''),
      (text) => text.includes('"event":"pgwire-bridge.session"'),
    );
    expect(logged).toContain('"closeCode":1000');
    expect(logged).not.toContain('metrics not written');
  });
});
