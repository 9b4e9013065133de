import { SignJWT } from 'jose';
import pg from 'pg';
import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Socket, type SocketOptions } from 'pgwire-bridge/client';
import { WINDOW_TO_SERVER_BYTES } from '../../common/flow-control.js';
import {
  decodeBase64Url,
  encodeBase64Url,
  FLOW_CONTROL_PROTOCOL,
  FLOW_CONTROL_STARTUP_PROTOCOL,
  STARTUP_PROTOCOL_PREFIX,
} from '../../common/subprotocols.js';
import { startBridge, type RunningBridge } from '../../dev/bridge.js';
import type { Env } from '../../worker/config.js';
import { bridgePostgresJs, postgres, rawSession } from '../support/clients.js';
import { startRecordingProxy } from '../support/recording-proxy.js';
import { Bytes, packet, readMessages, startupMessage } from '../support/wire.js';

// Every bridge here reaches PostgreSQL through the recording proxy, so a test can show that a
// startup refused in the upgrade opened no TCP connection.
let proxy: Awaited<ReturnType<typeof startRecordingProxy>>;
const bridges: RunningBridge[] = [];
const SECRET = 'a-shared-secret-of-at-least-32-characters';
const AUDIENCE = 'startup-in-upgrade-tests';

beforeAll(async () => {
  proxy = await startRecordingProxy(postgres());
});
afterAll(async () => {
  await Promise.all(bridges.map((b) => b.stop()));
  await proxy?.stop();
});

async function bridge(bindings: Partial<Env> = {}): Promise<RunningBridge> {
  const started = await startBridge({
    bindings: { PG_HOST: '127.0.0.1', PG_PORT: String(proxy.port), PG_TLS: 'off', ...bindings },
  });
  bridges.push(started);
  return started;
}

/** `ws`, recording the subprotocols each WebSocket offered, the one chosen, and the binary messages sent. */
function recordingWebSocket() {
  const sockets: Array<{ offered: string[]; chosen: () => string; sent: Uint8Array[] }> = [];
  class Recording extends WebSocket {
    constructor(url: string, protocols: string[], options: object) {
      super(url, protocols, options);
      const sent: Uint8Array[] = [];
      sockets.push({ offered: protocols, chosen: () => this.protocol, sent });
      const send = this.send.bind(this);
      this.send = ((data: Uint8Array | string) => {
        if (typeof data !== 'string') sent.push(new Uint8Array(data));
        send(data);
      }) as typeof this.send;
    }
  }
  return { WebSocket: Recording as never, sockets };
}

/** pg with the test server's credentials, over the socket on `recorder`'s WebSocket. */
function pgThrough(url: string, recorder: ReturnType<typeof recordingWebSocket>, options: Partial<SocketOptions> = {}) {
  const db = postgres();
  return new pg.Client({
    user: db.user,
    password: db.password,
    database: db.database,
    stream: () => new Socket({ url, WebSocket: recorder.WebSocket, ...options }) as never,
  });
}

const inlineProtocols = (bytes: Uint8Array) => [
  FLOW_CONTROL_STARTUP_PROTOCOL,
  FLOW_CONTROL_PROTOCOL,
  `${STARTUP_PROTOCOL_PREFIX}${encodeBase64Url(bytes)}`,
];

const fatal = (bytes: Uint8Array) =>
  readMessages(bytes)
    .filter((m) => m.type === 'E')
    .map((m) => new TextDecoder().decode(m.body).match(/C([0-9A-Z]{5})\0/)?.[1]);

describe('the StartupMessage in the upgrade', () => {
  it("carries pg's StartupMessage in the upgrade; the bridge takes it and the session goes on", async () => {
    const b = await bridge();
    const recorder = recordingWebSocket();
    const db = postgres();
    const client = pgThrough(b.url, recorder);
    await client.connect();
    expect((await client.query('SELECT 40 + 2 AS answer')).rows).toEqual([{ answer: 42 }]);
    await client.end();

    const [socket] = recorder.sockets;
    expect(socket!.chosen()).toBe(FLOW_CONTROL_STARTUP_PROTOCOL);
    const inline = socket!.offered.find((p) => p.startsWith(STARTUP_PROTOCOL_PREFIX))!;
    const startup = decodeBase64Url(inline.slice(STARTUP_PROTOCOL_PREFIX.length))!;
    expect(new TextDecoder().decode(startup)).toContain(`user\0${db.user}\0`);
    // What pg wrote first travelled in the upgrade: its first binary message is SCRAM's first answer.
    expect(String.fromCharCode(socket!.sent[0]![0]!)).toBe('p');
    expect(socket!.sent.some((m) => m.length === startup.length && m.every((v, i) => v === startup[i]))).toBe(false);
  });

  it('serves postgres.js the same way', async () => {
    const b = await bridge();
    const sql = bridgePostgresJs(b.url);
    expect(await sql`SELECT ${'x'}::text AS v`).toEqual([{ v: 'x' }]);
    await sql.end();
  });

  it('logs in with edge-held credentials while answering the upgrade', async () => {
    const b = await bridge({
      JWT_SECRET: SECRET,
      JWT_AUDIENCE: AUDIENCE,
      PG_CREDENTIALS: JSON.stringify({ [postgres().user]: postgres().password }),
    });
    const token = await new SignJWT({})
      .setProtectedHeader({ alg: 'HS256' })
      .setAudience(AUDIENCE)
      .setExpirationTime('5m')
      .sign(new TextEncoder().encode(SECRET));
    const recorder = recordingWebSocket();
    const client = new pg.Client({
      user: 'ignored',
      database: postgres().database,
      stream: () => new Socket({ url: b.url, WebSocket: recorder.WebSocket, token }) as never,
    });
    await client.connect();
    expect((await client.query('SELECT current_user AS role')).rows).toEqual([{ role: postgres().user }]);
    await client.end();
    expect(recorder.sockets[0]!.chosen()).toBe(FLOW_CONTROL_STARTUP_PROTOCOL);
    // Nothing but the query and the Terminate went over the WebSocket: no password exchange.
    expect(recorder.sockets[0]!.sent.map((m) => String.fromCharCode(m[0]!))).toEqual(['Q', 'X']);
  });

  it.each([
    ['a user ALLOWED_USERS does not admit', startupMessage({ user: 'mallory', database: 'postgres' }), '28000'],
    ['a database ALLOWED_DATABASES does not admit', startupMessage({ user: 'postgres', database: 'secret' }), '28000'],
    ['replication', startupMessage({ user: 'postgres', replication: 'database' }), '28000'],
    ['no user', startupMessage({ database: 'postgres' }), '28000'],
    ['protocol 4.0', startupMessage({ user: 'postgres' }, 4, 0), '0A000'],
    ['a bad layout', packet(new Bytes().int16(3).int16(0).cstring('user').cstring('postgres').build()), '08P01'],
    ['a length out of bounds', Uint8Array.of(0, 0, 0, 4), '08P01'],
  ])('refuses %s as the classic exchange does, and opens no TCP', async (_, bytes, sqlState) => {
    const b = await bridge({ ALLOWED_USERS: 'postgres', ALLOWED_DATABASES: 'postgres' });
    const before = proxy.connections.length;
    const classic = await rawSession(b.url, [bytes]);
    const inline = await rawSession(b.url, [], 5000, inlineProtocols(bytes));
    expect(fatal(inline.received)).toEqual([sqlState]);
    expect(inline.received).toEqual(classic.received);
    expect([inline.closeCode, inline.closeReason]).toEqual([classic.closeCode, classic.closeReason]);
    expect(proxy.connections.length).toBe(before);
  });

  it('counts the inline StartupMessage in the flow-control window, as the client does', async () => {
    const b = await bridge();
    const startup = startupMessage({ user: 'postgres', database: 'postgres' });
    // A Query whose bytes fill the window exactly once the StartupMessage is counted, and one byte more.
    const queryOf = (total: number) => {
      const bytes = new Uint8Array(total).fill(0x20);
      bytes[0] = 0x51; // Q
      new DataView(bytes.buffer).setUint32(1, total - 1);
      return bytes;
    };
    const fits = await rawSession(
      b.url,
      [queryOf(WINDOW_TO_SERVER_BYTES - startup.length)],
      1000,
      inlineProtocols(startup),
    ).catch(() => null);
    expect(fits?.closeReason).not.toBe('FLOW_WINDOW_EXCEEDED');
    const over = await rawSession(
      b.url,
      [queryOf(WINDOW_TO_SERVER_BYTES - startup.length + 1)],
      5000,
      inlineProtocols(startup),
    );
    expect(over.closeReason).toBe('FLOW_WINDOW_EXCEEDED');
  });

  it('refuses a startup subprotocol that is not base64url with HTTP 400, before any TCP', async () => {
    const b = await bridge();
    const before = proxy.connections.length;
    const status = await new Promise<number>((resolve) => {
      const ws = new WebSocket(b.url, [
        FLOW_CONTROL_STARTUP_PROTOCOL,
        FLOW_CONTROL_PROTOCOL,
        `${STARTUP_PROTOCOL_PREFIX}a`,
      ]);
      ws.on('unexpected-response', (_, response) => resolve(response.statusCode ?? 0));
      ws.on('open', () => resolve(101));
    });
    expect(status).toBe(400);
    expect(proxy.connections.length).toBe(before);
  });

  it('serves a client that does not offer it as before, and one that turns it off', async () => {
    const b = await bridge();
    const recorder = recordingWebSocket();
    const client = pgThrough(b.url, recorder, { startupInUpgrade: false });
    await client.connect();
    expect((await client.query('SELECT 1 AS one')).rows).toEqual([{ one: 1 }]);
    await client.end();
    expect(recorder.sockets[0]!.offered).toEqual([FLOW_CONTROL_PROTOCOL]);
    expect(recorder.sockets[0]!.chosen()).toBe(FLOW_CONTROL_PROTOCOL);
  });
});
