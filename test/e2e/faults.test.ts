import { readFile, writeFile } from 'node:fs/promises';
import { connect, createServer, type Server, type Socket as TcpSocket } from 'node:net';
import { SignJWT } from 'jose';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startBridge, type RunningBridge } from '../../dev/bridge.js';
import { startPostgres, type RunningPostgres } from '../../dev/postgres.js';
import { backendPids, bridgeClient, eventually, msUntilBackendGone } from '../support/clients.js';
import { RawClient } from '../support/raw-client.js';
import { errorFields, terminate } from '../support/wire.js';

// A PostgreSQL of this suite's own, so stopping and restarting it disturbs no other suite.
let db: RunningPostgres;
let bridge: RunningBridge;
const CONNECT_TIMEOUT_MS = 800;

beforeAll(async () => {
  db = await startPostgres();
  bridge = await startBridge({
    bindings: {
      PG_HOST: db.host,
      PG_PORT: String(db.port),
      PG_TLS: 'require',
      CONNECT_TIMEOUT_MS: String(CONNECT_TIMEOUT_MS),
    },
    trustedCaPem: db.caPem,
  });
});
afterAll(async () => {
  await bridge?.stop();
  await db?.stop();
});

/** The one byte PostgreSQL answers an SSLRequest with: 'S' or 'N'. */
function sslAnswer(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1', () => socket.write(Buffer.from([0, 0, 0, 8, 4, 210, 22, 47])));
    socket.once('data', (data) => {
      resolve(String.fromCharCode(data[0]!));
      socket.destroy();
    });
    socket.once('error', reject);
  });
}

const credentials = () => ({ user: db.user, password: db.password, database: db.database });
const client = () => bridgeClient(bridge.url, credentials());
async function watcher(): Promise<pg.Client> {
  const w = new pg.Client({ ...credentials(), host: db.host, port: db.port, ssl: { ca: db.caPem } });
  await w.connect();
  return w;
}

describe('faults', () => {
  it('reports PostgreSQL restarting mid-query to the client within 1 s, and works again after', async () => {
    const c = client();
    const errors: Error[] = [];
    c.on('error', (error) => errors.push(error));
    await c.connect();
    const running = c.query('SELECT pg_sleep(30)').then(
      () => null,
      (error: unknown) => error,
    );
    await new Promise((resolve) => setTimeout(resolve, 100));
    const stopping = Date.now();
    const stopped = db.stopServer();
    expect(await running).toMatchObject({
      code: '57P01',
      message: 'terminating connection due to administrator command',
    });
    expect(Date.now() - stopping).toBeLessThan(1000);
    await stopped;
    await db.startServer();

    const again = client();
    await again.connect();
    expect((await again.query('SELECT 1 AS ok')).rows).toEqual([{ ok: 1 }]);
    await again.end();
  });

  it('answers 08001 within the connect timeout while PostgreSQL is down', async () => {
    await db.stopServer();
    try {
      const started = Date.now();
      await expect(client().connect()).rejects.toMatchObject({ code: '08001', severity: 'FATAL' });
      expect(Date.now() - started).toBeLessThan(CONNECT_TIMEOUT_MS + 500);
    } finally {
      await db.startServer();
    }
  });

  it('answers 08001 within the connect timeout when the server accepts TCP but never speaks', async () => {
    // A hung server: the one fault here a real PostgreSQL cannot be made to show on demand.
    const sockets = new Set<TcpSocket>();
    const silent: Server = createServer((socket) => sockets.add(socket));
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const port = (silent.address() as { port: number }).port;
    const hung = await startBridge({
      bindings: { PG_HOST: '127.0.0.1', PG_PORT: String(port), PG_TLS: 'require', CONNECT_TIMEOUT_MS: '500' },
    });
    try {
      const started = Date.now();
      await expect(bridgeClient(hung.url, credentials()).connect()).rejects.toMatchObject({
        code: '08001',
        message: 'could not connect to the database server: timed out after 500 ms',
      });
      expect(Date.now() - started).toBeLessThan(1500);
    } finally {
      await hung.stop();
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => silent.close(resolve));
    }
  });

  it('ends the backend within 1 s when the WebSocket drops without a close frame', async () => {
    const w = await watcher();
    const raw = await RawClient.connect(bridge.url, credentials());
    expect(await backendPids(w)).toContain(raw.processId);
    raw.drop();
    expect(await msUntilBackendGone(w, raw.processId, 1000)).toBeLessThan(1000);
    await w.end();
  });

  it("closes the WebSocket cleanly when PostgreSQL ends the session after the client's Terminate", async () => {
    const raw = await RawClient.connect(bridge.url, credentials());
    raw.send(terminate());
    expect(await raw.closed()).toBe(1000);
    expect(raw.drain()).toEqual([]);
  });

  it('answers 08001, never clear text, when PostgreSQL does not accept TLS', async () => {
    const w = await watcher();
    await w.query('ALTER SYSTEM SET ssl = off');
    await w.query('SELECT pg_reload_conf()');
    try {
      // The postmaster re-reads its configuration on its own time: ask it directly.
      expect(
        await eventually(
          () => sslAnswer(db.port),
          (answer) => answer === 'N',
          5000,
        ),
      ).toBe('N');
      const refused = client();
      refused.on('error', () => {});
      await expect(refused.connect()).rejects.toMatchObject({
        code: '08001',
        severity: 'FATAL',
        message: 'the database server does not accept TLS connections',
      });
    } finally {
      await w.query('ALTER SYSTEM RESET ssl');
      await w.query('SELECT pg_reload_conf()');
      await w.end();
    }
  });

  it('answers 08001 when PostgreSQL asks the edge login for anything but SCRAM', async () => {
    const w = await watcher();
    const hbaFile = (await w.query<{ hba_file: string }>('SHOW hba_file')).rows[0]!.hba_file;
    const original = await readFile(hbaFile, 'utf8');
    await w.query("DROP ROLE IF EXISTS edge_cleartext; CREATE ROLE edge_cleartext LOGIN PASSWORD 'pw'");
    await writeFile(hbaFile, `host all edge_cleartext 127.0.0.1/32 password\n${original}`);
    await w.query('SELECT pg_reload_conf()');
    const secret = 'a-shared-secret-of-at-least-32-characters';
    const edge = await startBridge({
      bindings: {
        PG_HOST: db.host,
        PG_PORT: String(db.port),
        PG_TLS: 'require',
        JWT_SECRET: secret,
        JWT_AUDIENCE: 'faults',
        PG_CREDENTIALS: JSON.stringify({ edge_cleartext: 'pw' }),
      },
      trustedCaPem: db.caPem,
    });
    try {
      const token = await new SignJWT({})
        .setProtectedHeader({ alg: 'HS256' })
        .setAudience('faults')
        .setExpirationTime('5m')
        .sign(new TextEncoder().encode(secret));
      await expect(bridgeClient(`${edge.url}?token=${token}`, credentials()).connect()).rejects.toMatchObject({
        code: '08001',
        message: 'the database server asked for an authentication method other than SCRAM-SHA-256',
      });
    } finally {
      await edge.stop();
      await writeFile(hbaFile, original);
      await w.query('SELECT pg_reload_conf()');
      await w.end();
    }
  });

  it('answers 08006 between whole messages when a backend dies without a word', async () => {
    const raw = await RawClient.connect(bridge.url, credentials());
    process.kill(raw.processId, 'SIGKILL');
    expect(await raw.closed()).toBe(1014);
    const last = raw.drain().at(-1);
    expect(last?.type).toBe('E');
    expect(errorFields(last!.body)).toMatchObject({
      S: 'FATAL',
      C: '08006',
      M: 'server closed the connection unexpectedly',
    });
    // The postmaster restarts every backend after a crash; wait until it serves again.
    const serves = async () => {
      const probe = client();
      probe.on('error', () => {});
      return probe.connect().then(
        () => probe.end().then(() => true),
        () => false,
      );
    };
    expect(await eventually(serves, (ok) => ok, 10_000)).toBe(true);
  });
});
