import { SignJWT } from 'jose';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SocketOptions } from 'pgwire-bridge/client';
import type { RunningBridge } from '../../dev/bridge.js';
import type { Env } from '../../worker/config.js';
import { bridgeClient, directClient, eventually, msUntilBackendGone, postgres } from '../support/clients.js';
import {
  startLoggedBridge,
  settle,
  watchClient,
  type BridgeLog,
  type WatchedClient,
} from '../support/logged-bridge.js';
import { RawClient } from '../support/raw-client.js';
import { startRecordingProxy } from '../support/recording-proxy.js';
import { bind, concat, errorFields, execute, message, parse, query, startupMessage, sync } from '../support/wire.js';

// Short limits, generous waits: what is asserted is what the client saw, why the bridge says the
// session ended, and what PostgreSQL committed, never how fast.
const TABLE = 'limits_e2e';
const SECRET = 'a-shared-secret-of-at-least-32-characters';
const AUDIENCE = 'pgwire-bridge-limits';
/** A statement that outlasts every limit below, and commits a row tagged `tag` if it is let finish. */
const slowInsert = (tag: string) => `INSERT INTO ${TABLE} SELECT '${tag}' FROM pg_sleep(4)`;

let watcher: pg.Client;
const stops: Array<() => Promise<void>> = [];

beforeAll(async () => {
  watcher = directClient();
  await watcher.connect();
  await watcher.query(`DROP TABLE IF EXISTS ${TABLE}`);
  await watcher.query(`CREATE TABLE ${TABLE} (tag text NOT NULL)`);
});
afterAll(async () => {
  await Promise.all(stops.map((stop) => stop()));
  await watcher?.end();
});

/** For a describe block: a bridge with these bindings, as deployed (TLS to PostgreSQL), started once. */
function bridgeFor(bindings: Env): { readonly bridge: RunningBridge; readonly log: BridgeLog } {
  const suite = {} as { bridge: RunningBridge; log: BridgeLog };
  beforeAll(async () => {
    const db = postgres();
    Object.assign(
      suite,
      await startLoggedBridge({
        bindings: { PG_HOST: db.host, PG_PORT: String(db.port), PG_TLS: 'require', ...bindings },
        trustedCaPem: db.caPem,
      }),
    );
    stops.push(() => suite.bridge.stop());
  });
  return suite;
}

/** A connected pg client through the bridge, watched, and its backend's pid. */
async function connected(url: string, socket: Partial<SocketOptions> = {}): Promise<WatchedClient & { pid: number }> {
  const watched = watchClient(bridgeClient(url, {}, socket));
  await watched.client.connect();
  const { rows } = await watched.client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
  return { ...watched, pid: rows[0]!.pid };
}

/** A token for `sub` that expires in `seconds` − 1 to `seconds` (exp counts whole seconds). */
async function shortLived(sub: string, seconds = 3): Promise<{ token: string; expiresAt: number }> {
  const exp = Math.floor(Date.now() / 1000) + seconds;
  const token = await new SignJWT({ sub })
    .setProtectedHeader({ alg: 'HS256' })
    .setAudience(AUDIENCE)
    .setExpirationTime(exp)
    .sign(new TextEncoder().encode(SECRET));
  return { token, expiresAt: exp * 1000 };
}

async function committed(tag: string): Promise<number> {
  const { rows } = await watcher.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${TABLE} WHERE tag = $1`, [tag]);
  return rows[0]!.n;
}

describe('idle sessions', () => {
  const suite = bridgeFor({ IDLE_TIMEOUT_MS: '2000', IDLE_IN_TRANSACTION_TIMEOUT_MS: '2000' });

  it('lets a statement outlast IDLE_TIMEOUT_MS and commit, then ends the session 57P05 after true idleness', async () => {
    const after = suite.log.sessionCount;
    const s = await connected(suite.bridge.url);
    const result = await s.client.query(slowInsert('outlasts-idle-timeout'));
    const answeredAt = Date.now();
    expect(result.rowCount).toBe(1);
    expect(s.errors).toEqual([]);
    expect(await committed('outlasts-idle-timeout')).toBe(1);
    // The idle clock starts at the statement's ReadyForQuery, not at the Query.
    expect((await s.ended) - answeredAt).toBeGreaterThanOrEqual(1500);
    expect(s.errors[0]).toMatchObject({ code: '57P05', severity: 'FATAL' });
    expect(await suite.log.session('IDLE_TIMEOUT', after)).toMatchObject({ closeCode: 1001 });
    await msUntilBackendGone(watcher, s.pid);
  });

  it('ends a session idle inside a transaction with 25P03, and its insert is not committed', async () => {
    const after = suite.log.sessionCount;
    const s = await connected(suite.bridge.url);
    await s.client.query('BEGIN');
    await s.client.query(`INSERT INTO ${TABLE} VALUES ('idle-in-transaction')`);
    await s.ended;
    expect(s.errors[0]).toMatchObject({ code: '25P03', severity: 'FATAL' });
    await suite.log.session('IDLE_IN_TRANSACTION_TIMEOUT', after);
    await msUntilBackendGone(watcher, s.pid);
    expect(await committed('idle-in-transaction')).toBe(0);
  });

  it('ends a session idle after a COPY FROM STDIN sent as libpq sends it, with a Sync the COPY ignores', async () => {
    const after = suite.log.sessionCount;
    const raw = await RawClient.connect(suite.bridge.url, postgres());
    // libpq's extended-protocol COPY: Sync right after Execute; the server reads it as copy input.
    raw.send(concat(parse(`COPY ${TABLE} FROM STDIN`), bind(), execute(), sync()));
    expect((await raw.until('G')).map((m) => m.type)).toEqual(['1', '2', 'G']);
    raw.send(concat(message('d', new TextEncoder().encode('copied-then-idle\n')), message('c'), sync()));
    expect((await raw.until('Z')).map((m) => m.type)).toEqual(['C', 'Z']);
    expect(await committed('copied-then-idle')).toBe(1);
    // Owed no ReadyForQuery for the ignored Sync, the bridge sees the session idle.
    const fatal = await raw.next(8000);
    expect(fatal.type).toBe('E');
    expect(errorFields(fatal.body)).toMatchObject({ S: 'FATAL', C: '57P05' });
    expect(await raw.closed()).toBe(1001);
    await suite.log.session('IDLE_TIMEOUT', after);
  });

  it('counts Syncs again once PostgreSQL ends a COPY with an error, though the client sends no CopyDone', async () => {
    const after = suite.log.sessionCount;
    const raw = await RawClient.connect(suite.bridge.url, postgres());
    raw.send(query(`COPY ${TABLE} FROM STDIN`));
    await raw.until('G');
    // A row with a column too many: PostgreSQL ends the COPY with an error, and the client sends
    // neither CopyDone nor CopyFail after it (pg-copy-streams does not).
    raw.send(message('d', new TextEncoder().encode('one\tcolumn too many\n')));
    expect((await raw.until('Z')).map((m) => m.type)).toEqual(['E', 'Z']);
    // Two statements pipelined, the second outlasting IDLE_TIMEOUT_MS: still owed its
    // ReadyForQuery after the first one's, the session is not idle while it runs.
    raw.send(concat(parse('SELECT 1'), bind(), execute(), sync()));
    raw.send(concat(parse('SELECT pg_sleep(3)'), bind(), execute(), sync()));
    expect((await raw.until('Z')).map((m) => m.type)).toEqual(['1', '2', 'D', 'C', 'Z']);
    expect((await raw.until('Z', 8000)).map((m) => m.type)).toEqual(['1', '2', 'D', 'C', 'Z']);
    const fatal = await raw.next(8000);
    expect(errorFields(fatal.body)).toMatchObject({ S: 'FATAL', C: '57P05' });
    await suite.log.session('IDLE_TIMEOUT', after);
  });

  it('does not count keepalives or empty binary messages as activity', async () => {
    const after = suite.log.sessionCount;
    const db = postgres();
    const raw = await RawClient.connect(suite.bridge.url, db);
    let sent = 0;
    const traffic = setInterval(() => {
      // The raw client's WebSocket sends a string as a text message: a keepalive.
      raw.send('k' as unknown as Uint8Array);
      raw.send(new Uint8Array());
      sent += 1;
    }, 200);
    try {
      const fatal = await raw.next(8000);
      expect(fatal.type).toBe('E');
      expect(errorFields(fatal.body)).toMatchObject({ S: 'FATAL', C: '57P05' });
      expect(await raw.closed()).toBe(1001);
    } finally {
      clearInterval(traffic);
    }
    // Kept alive through a whole IDLE_TIMEOUT_MS, and ended all the same.
    expect(sent).toBeGreaterThanOrEqual(8);
    await suite.log.session('IDLE_TIMEOUT', after);
  });
});

describe('maximum session length', () => {
  const suite = bridgeFor({ MAX_SESSION_MS: '2500' });

  it('cancels a running statement (57014), ends the session (57P01), and nothing is committed', async () => {
    const after = suite.log.sessionCount;
    const s = await connected(suite.bridge.url);
    expect(await settle(s.client.query(slowInsert('session-too-long')))).toMatchObject({
      code: '57014',
      message: 'canceling statement due to user request',
    });
    await s.ended;
    // Then the FATAL, outside any query.
    expect(s.errors[0]).toMatchObject({ code: '57P01', severity: 'FATAL' });
    expect(await suite.log.session('SESSION_TOO_LONG', after)).toMatchObject({ closeCode: 1001 });
    await msUntilBackendGone(watcher, s.pid);
    expect(await committed('session-too-long')).toBe(0);
  });
});

describe('token expiry', () => {
  const suite = bridgeFor({ JWT_SECRET: SECRET, JWT_AUDIENCE: AUDIENCE });
  const graced = bridgeFor({ JWT_SECRET: SECRET, JWT_AUDIENCE: AUDIENCE, TOKEN_EXPIRY_GRACE_MS: '2000' });

  const expiredSession = (log: BridgeLog, subject: string) =>
    log.find('pgwire-bridge.session', (line) => line.subject === subject && line.closeReason === 'TOKEN_EXPIRED');

  it('ends an idle session with 28000 when its token expires', async () => {
    const { token, expiresAt } = await shortLived('expires-idle');
    const s = await connected(suite.bridge.url, { token });
    const ended = await s.ended;
    expect(ended).toBeGreaterThanOrEqual(expiresAt - 100);
    expect(s.errors[0]).toMatchObject({ code: '28000', severity: 'FATAL' });
    await expiredSession(suite.log, 'expires-idle');
    await msUntilBackendGone(watcher, s.pid);
  });

  it('cancels a statement running when the token expires, and nothing is committed', async () => {
    const { token } = await shortLived('expires-busy');
    const s = await connected(suite.bridge.url, { token });
    expect(await settle(s.client.query(slowInsert('token-expired')))).toMatchObject({ code: '57014' });
    await s.ended;
    expect(s.errors[0]).toMatchObject({ code: '28000', severity: 'FATAL' });
    await expiredSession(suite.log, 'expires-busy');
    await msUntilBackendGone(watcher, s.pid);
    expect(await committed('token-expired')).toBe(0);
  });

  it('with TOKEN_EXPIRY_GRACE_MS, serves the session past exp until the grace is over', async () => {
    const { token, expiresAt } = await shortLived('expires-with-grace');
    const s = await connected(graced.bridge.url, { token });
    await new Promise((resolve) => setTimeout(resolve, expiresAt + 500 - Date.now()));
    expect((await s.client.query('SELECT 1 AS ok')).rows).toEqual([{ ok: 1 }]);
    expect(await s.ended).toBeGreaterThanOrEqual(expiresAt + 2000 - 100);
    expect(s.errors[0]).toMatchObject({ code: '28000', severity: 'FATAL' });
    await expiredSession(graced.log, 'expires-with-grace');
  });
});

describe('logins', () => {
  const LOGIN_TIMEOUT_MS = 1500;
  let stalled: Awaited<ReturnType<typeof startRecordingProxy>>;
  let stalledBeforeReady: Awaited<ReturnType<typeof startRecordingProxy>>;
  let healthy: Awaited<ReturnType<typeof startRecordingProxy>>;
  const suite = {} as { bridge: RunningBridge; log: BridgeLog };
  const db = postgres;
  /** The bridge's URL for a session to the server on `port` (PG_TARGETS lets the client choose). */
  const to = (port: number) => `${suite.bridge.url}?host=127.0.0.1&port=${port}`;
  const tcpConnections = () =>
    stalled.connections.length + stalledBeforeReady.connections.length + healthy.connections.length;

  beforeAll(async () => {
    // How many messages PostgreSQL sends before its first ReadyForQuery: a proxy passing all but
    // the last stalls a login after BackendKeyData.
    const direct = await RawClient.connect({ host: db().host, port: db().port }, db());
    const beforeReady = direct.serverMessages.findIndex((message) => message.type === 'Z');
    direct.close();
    [stalled, stalledBeforeReady, healthy] = await Promise.all([
      // PostgreSQL's SCRAM challenge reaches the client; nothing after it does.
      startRecordingProxy(db(), { serverMessagesBeforeStall: 1 }),
      startRecordingProxy(db(), { serverMessagesBeforeStall: beforeReady }),
      startRecordingProxy(db()),
    ]);
    stops.push(stalled.stop, stalledBeforeReady.stop, healthy.stop);
    const targets = [stalled, stalledBeforeReady, healthy].map((s) => `127.0.0.1:${s.port}`).join(', ');
    Object.assign(
      suite,
      await startLoggedBridge({
        bindings: {
          PG_TARGETS: targets,
          PG_TLS: 'off',
          LOGIN_TIMEOUT_MS: String(LOGIN_TIMEOUT_MS),
          MAX_LOGINS_IN_PROGRESS: '2',
        },
      }),
    );
    stops.push(() => suite.bridge.stop());
  });

  it.each([
    ['in the middle of SCRAM', () => stalled],
    ['after BackendKeyData, before ReadyForQuery', () => stalledBeforeReady],
  ])('ends a login that stalls %s with 08006 at LOGIN_TIMEOUT_MS', async (_, proxy) => {
    const after = suite.log.sessionCount;
    const client = bridgeClient(to(proxy().port));
    const started = Date.now();
    await expect(client.connect()).rejects.toMatchObject({ code: '08006', severity: 'FATAL' });
    // At the login timeout, not at some later one (the connect timeout is 10 s).
    expect(Date.now() - started).toBeLessThan(LOGIN_TIMEOUT_MS + 3000);
    await suite.log.session('LOGIN_TIMEOUT', after);
    await proxy().connections.at(-1)!.closed;
  });

  /** A raw session whose StartupMessage goes to the stalling proxy, holding a login slot. */
  async function stalledLogin(): Promise<RawClient> {
    const raw = await RawClient.open(to(stalled.port));
    raw.send(startupMessage({ user: db().user, database: db().database }));
    return raw;
  }

  it('lets a login wait for a slot beyond MAX_LOGINS_IN_PROGRESS, and serves it when one frees', async () => {
    const before = tcpConnections();
    const holders = [await stalledLogin(), await stalledLogin()];
    await eventually(
      async () => tcpConnections(),
      (n) => n === before + 2,
    );
    const waiting = bridgeClient(to(healthy.port));
    const connecting = waiting.connect();
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(tcpConnections()).toBe(before + 2);
    holders[0]!.close();
    await connecting;
    expect((await waiting.query('SELECT 1 AS ok')).rows).toEqual([{ ok: 1 }]);
    await waiting.end();
    holders[1]!.close();
    expect(tcpConnections()).toBe(before + 3);
  });

  it('when nothing frees a slot, the logins holding them end at their LOGIN_TIMEOUT_MS and the waiting one is served', async () => {
    // A login's clock starts before it takes its place in line, so the sessions holding the
    // slots always reach their login timeout before the one waiting behind them does.
    const after = suite.log.sessionCount;
    const before = tcpConnections();
    const holders = [await stalledLogin(), await stalledLogin()];
    await eventually(
      async () => tcpConnections(),
      (n) => n === before + 2,
    );
    await new Promise((resolve) => setTimeout(resolve, 500));
    const waiting = bridgeClient(to(healthy.port));
    const connecting = waiting.connect();
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(tcpConnections()).toBe(before + 2);
    for (const holder of holders) {
      const fatal = (await holder.until('E', LOGIN_TIMEOUT_MS + 3000)).at(-1)!;
      expect(errorFields(fatal.body)).toMatchObject({ S: 'FATAL', C: '08006' });
    }
    await connecting;
    expect((await waiting.query('SELECT 1 AS ok')).rows).toEqual([{ ok: 1 }]);
    await waiting.end();
    expect(tcpConnections()).toBe(before + 3);
    const ended = suite.log.events('pgwire-bridge.session').slice(after);
    expect(ended.filter((line) => line.closeReason === 'LOGIN_TIMEOUT')).toHaveLength(2);
    expect(ended.filter((line) => line.closeReason === 'TOO_MANY_LOGINS')).toHaveLength(0);
  });

  describe('a login waiting in line', () => {
    const line = {} as { bridge: RunningBridge; log: BridgeLog };
    beforeAll(async () => {
      const targets = [stalled, healthy].map((s) => `127.0.0.1:${s.port}`).join(', ');
      const bindings = { PG_TARGETS: targets, PG_TLS: 'off', JWT_SECRET: SECRET, JWT_AUDIENCE: AUDIENCE };
      Object.assign(
        line,
        await startLoggedBridge({ bindings: { ...bindings, MAX_LOGINS_IN_PROGRESS: '1', LOGIN_TIMEOUT_MS: '20000' } }),
      );
      stops.push(() => line.bridge.stop());
    });

    it('is refused 53300 TOO_MANY_LOGINS when a limit ends it there, and never reaches PostgreSQL', async () => {
      const after = line.log.sessionCount;
      const url = (port: number) => `${line.bridge.url}?host=127.0.0.1&port=${port}`;
      // The one login slot, held by a login that stalls in the middle of SCRAM.
      const stalledBefore = stalled.connections.length;
      const holder = bridgeClient(url(stalled.port), {}, { token: (await shortLived('holds-the-slot', 60)).token });
      // (pg leaves connect() pending when end() is called before the login completes.)
      void holder.connect().catch(() => {});
      await eventually(
        async () => stalled.connections.length,
        (n) => n === stalledBefore + 1,
      );
      // Behind it, a login whose token expires before the slot frees.
      const healthyBefore = healthy.connections.length;
      const waiting = bridgeClient(url(healthy.port), {}, { token: (await shortLived('waits-in-line')).token });
      await expect(waiting.connect()).rejects.toMatchObject({
        code: '53300',
        severity: 'FATAL',
        message: 'sorry, too many clients are logging in already',
      });
      expect(healthy.connections.length).toBe(healthyBefore);
      expect(await line.log.session('TOO_MANY_LOGINS', after)).toMatchObject({ subject: 'waits-in-line' });
      await holder.end();
      await line.log.session('client closed the connection', after);
    });
  });
});

describe('sessions per isolate', () => {
  let proxy: Awaited<ReturnType<typeof startRecordingProxy>>;
  const suite = {} as { bridge: RunningBridge; log: BridgeLog };

  beforeAll(async () => {
    proxy = await startRecordingProxy(postgres());
    stops.push(proxy.stop);
    Object.assign(
      suite,
      await startLoggedBridge({
        bindings: { PG_HOST: '127.0.0.1', PG_PORT: String(proxy.port), PG_TLS: 'off', MAX_SESSIONS: '3' },
      }),
    );
    stops.push(() => suite.bridge.stop());
  });

  it('refuses a session beyond MAX_SESSIONS with 53300 before any TCP, and serves one once another leaves', async () => {
    const sessions = [];
    for (let i = 0; i < 3; i++) sessions.push(await connected(suite.bridge.url));
    const before = proxy.connections.length;
    const refused = bridgeClient(suite.bridge.url);
    await expect(refused.connect()).rejects.toMatchObject({ code: '53300', severity: 'FATAL' });
    expect(proxy.connections.length).toBe(before);
    await suite.log.session('TOO_MANY_SESSIONS');

    const left = suite.log.sessionCount;
    await sessions.pop()!.client.end();
    await eventually(
      async () => suite.log.sessionCount,
      (n) => n > left,
    );
    const next = await connected(suite.bridge.url);
    expect((await next.client.query('SELECT 1 AS ok')).rows).toEqual([{ ok: 1 }]);
    await Promise.all([...sessions, next].map((s) => s.client.end()));
  });
});
