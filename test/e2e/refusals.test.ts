import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startBridge, type RunningBridge } from '../../dev/bridge.js';
import { freePort } from '../../dev/postgres.js';
import { bridgeClient, directClient, msUntilBackendGone, postgres, rawSession } from '../support/clients.js';
import { rawToPostgres } from '../support/direct-raw.js';
import {
  HTTP_GET,
  NMAP_SMB_PROBE,
  TLS_CLIENT_HELLO,
  concat,
  errorFields,
  message,
  query,
  readMessages,
  sslRequest,
  startupMessage,
} from '../support/wire.js';

let bridge: RunningBridge;
const extra: RunningBridge[] = [];

beforeAll(async () => {
  const db = postgres();
  bridge = await startBridge({ bindings: { PG_HOST: db.host, PG_PORT: String(db.port), PG_TLS: 'off' } });
});
afterAll(async () => {
  await Promise.all([bridge, ...extra].map((b) => b?.stop()));
});

async function extraBridge(bindings: Record<string, string>, trustedCaPem?: string): Promise<RunningBridge> {
  const started = await startBridge({ bindings, ...(trustedCaPem && { trustedCaPem }) });
  extra.push(started);
  return started;
}

/** The one FATAL ErrorResponse a refused session receives, as fields. */
function onlyFatal(received: Uint8Array): Record<string, string> {
  const messages = readMessages(received);
  expect(messages.map((m) => m.type)).toEqual(['E']);
  const fields = errorFields(messages[0]!.body);
  expect(fields.S).toBe('FATAL');
  return fields;
}

describe('startup refusals over a real WebSocket', () => {
  it.each([
    ["nmap's SMB probe", NMAP_SMB_PROBE],
    ['protocol 4.0', startupMessage({ user: 'postgres' }, 4, 0)],
    ['a startup message without user', startupMessage({ database: 'postgres' })],
  ])('answers %s with the same SQLSTATE and message as PostgreSQL itself, then closes', async (_, bytes) => {
    const [bridged, straight] = await Promise.all([rawSession(bridge.url, [bytes]), rawToPostgres(bytes)]);
    const ours = onlyFatal(bridged.received);
    const theirs = errorFields(readMessages(straight)[0]!.body);
    expect({ C: ours.C, M: ours.M }).toEqual({ C: theirs.C, M: theirs.M });
    expect(bridged.closeCode).toBeGreaterThanOrEqual(1002);
  });

  it.each([
    ['an HTTP request', HTTP_GET],
    ['a TLS ClientHello', TLS_CLIENT_HELLO],
    ['a 4-byte message', Uint8Array.of(0, 0, 0, 4)],
  ])('answers %s, where PostgreSQL closes silently, with 08P01 before closing', async (_, bytes) => {
    const session = await rawSession(bridge.url, [bytes]);
    expect(onlyFatal(session.received)).toMatchObject({ C: '08P01', M: 'invalid length of startup packet' });
    expect(session.closeCode).toBe(1002);
    expect(session.closeReason).toBe('INVALID_STARTUP_LENGTH');
  });

  it('refuses a text WebSocket message that is not flow control with 08P01', async () => {
    const session = await rawSession(bridge.url, ['SELECT 1']);
    expect(onlyFatal(session.received)).toMatchObject({ C: '08P01' });
    expect(session.closeReason).toBe('INVALID_ACK');
  });

  it('refuses any text WebSocket message from a client without flow control with 08P01', async () => {
    const db = postgres();
    const offering = await extraBridge({
      PG_HOST: db.host,
      PG_PORT: String(db.port),
      PG_TLS: 'off',
      FLOW_CONTROL: 'offer',
    });
    const session = await rawSession(offering.url, ['k'], 5000, []);
    expect(onlyFatal(session.received)).toMatchObject({ C: '08P01' });
    expect(session.closeReason).toBe('TEXT_MESSAGE');
  });

  it('answers SSLRequest with N and goes on with the startup', async () => {
    const session = await rawSession(bridge.url, [sslRequest(), startupMessage({ database: 'x' })]);
    expect(session.received[0]).toBe(0x4e);
    expect(onlyFatal(session.received.subarray(1))).toMatchObject({ C: '28000' });
    expect(session.closeReason).toBe('MISSING_USER');
  });
});

describe('refusals inside a session', () => {
  it('ends the session with 08P01 at a bad frame and forwards nothing from it on', async () => {
    const direct = directClient();
    await direct.connect();
    await direct.query('CREATE TABLE IF NOT EXISTS e2e_refused (label text)');
    const client = bridgeClient(bridge.url);
    await client.connect();
    const { rows: backend } = await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
    // As with PostgreSQL itself, pg reports the FATAL error, then that the connection ended.
    const errors: Array<Error & { code?: string }> = [];
    client.on('error', (error) => errors.push(error));
    const ended = new Promise((resolve) => client.once('end', resolve));

    // One WebSocket message: a valid insert, a frame with a type byte no frontend sends, another insert.
    const socket = (client as unknown as { connection: { stream: { write(b: Uint8Array): void } } }).connection.stream;
    socket.write(
      concat(
        query("INSERT INTO e2e_refused VALUES ('before')"),
        message('?', new Uint8Array(8)),
        query("INSERT INTO e2e_refused VALUES ('after')"),
      ),
    );

    await ended;
    expect(errors[0]).toMatchObject({ code: '08P01', message: 'invalid frontend message type 63' });
    // Once the backend has exited, the insert before the bad frame is committed or never will be.
    await msUntilBackendGone(direct, backend[0]!.pid);
    const { rows } = await direct.query('SELECT label FROM e2e_refused');
    expect(rows).toEqual([{ label: 'before' }]);
    await direct.end();
  });
});

describe('HTTP requests that are not a bridge session', () => {
  const http = () => bridge.url.replace(/^ws/, 'http');

  it('answers other paths with 404, other methods with 405 and plain GETs with 426', async () => {
    expect((await fetch(new URL('/', http()))).status).toBe(404);
    expect((await fetch(http(), { method: 'POST' })).status).toBe(405);
    expect((await fetch(http())).status).toBe(426);
  });

  it('refuses the upgrade with 500 when the bridge is misconfigured, without details', async () => {
    const broken = await extraBridge({ PG_PORT: 'not-a-port' });
    const status = await new Promise<{ code: number; body: string }>((resolve) => {
      const ws = new WebSocket(broken.url);
      ws.on('unexpected-response', (_req, res) => {
        let body = '';
        res.on('data', (chunk: Buffer) => (body += chunk));
        res.on('end', () => resolve({ code: res.statusCode ?? 0, body }));
      });
    });
    expect(status.code).toBe(500);
    expect(status.body).not.toContain('PG_HOST');
  });
});

describe('connection failures toward PostgreSQL', () => {
  it('tells the client 08001 when PostgreSQL cannot be reached', async () => {
    const port = await freePort();
    const unreachable = await extraBridge({ PG_HOST: '127.0.0.1', PG_PORT: String(port), PG_TLS: 'off' });
    const client = bridgeClient(unreachable.url);
    await expect(client.connect()).rejects.toMatchObject({
      code: '08001',
      severity: 'FATAL',
      message: 'could not connect to the database server: connection failed',
    });
  });

  it("tells the client 08001 when PostgreSQL's certificate is not trusted, and never goes on in clear text", async () => {
    const db = postgres();
    const untrusting = await extraBridge({ PG_HOST: db.host, PG_PORT: String(db.port), PG_TLS: 'require' });
    const client = bridgeClient(untrusting.url);
    await expect(client.connect()).rejects.toMatchObject({
      code: '08001',
      message: 'could not establish a TLS connection to the database server',
    });
  });
});
