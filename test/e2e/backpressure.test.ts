import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startBridge, type RunningBridge } from '../../dev/bridge.js';
import {
  MAX_OUTSTANDING_MARKS,
  MESSAGE_WINDOW_TO_SERVER,
  WINDOW_TO_CLIENT_BYTES,
  WINDOW_TO_SERVER_BYTES,
} from '../../common/flow-control.js';
import { FLOW_CONTROL_PROTOCOL, KEEPALIVE } from '../../common/subprotocols.js';
import {
  bridgeClient,
  directClient,
  msUntilBackendGone,
  postgres,
  rawSession,
  type RawSession,
} from '../support/clients.js';
import { HostileClient, silentServer } from '../support/hostile.js';
import { errorFields, query, readMessages, startupMessage, terminate } from '../support/wire.js';

let bridge: RunningBridge;
let watcher: pg.Client;

beforeAll(async () => {
  const db = postgres();
  bridge = await startBridge({ bindings: { PG_HOST: db.host, PG_PORT: String(db.port), PG_TLS: 'off' } });
  watcher = directClient();
  await watcher.connect();
});
afterAll(async () => {
  await watcher?.end();
  await bridge?.stop();
});

const ROWS = 60_000;
const BIG = `SELECT repeat('x', 1000) AS filler FROM generate_series(1, ${ROWS})`;

/** A pg client through the shim, with a count of the bytes the bridge has sent it so far. */
async function countedClient() {
  const counter = { received: 0 };
  class Counted extends WebSocket {
    constructor(...args: ConstructorParameters<typeof WebSocket>) {
      super(...args);
      this.on('message', (data: Buffer, isBinary: boolean) => {
        if (isBinary) counter.received += data.length;
      });
    }
  }
  const client = bridgeClient(bridge.url, {}, { WebSocket: Counted as never });
  client.on('error', () => {});
  await client.connect();
  const { rows } = await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
  type Stream = { pause(): void; resume(): void; destroy(): void; once(event: string, listener: () => void): void };
  const stream = (client as unknown as { connection: { stream: Stream } }).connection.stream;
  return { client, counter, stream, pid: rows[0]!.pid };
}

/** Starts the large query and pauses the socket, as a slow consumer would, once its first bytes reach the driver. */
async function startPaused(c: Awaited<ReturnType<typeof countedClient>>) {
  const paused = new Promise<void>((resolve) =>
    c.stream.once('data', () => {
      c.stream.pause();
      resolve();
    }),
  );
  const result = c.client.query(BIG).then(
    (r) => r,
    (error: unknown) => error,
  );
  await paused;
  return { result };
}

describe('backpressure from the driver to PostgreSQL', () => {
  it('stops sending at the flow-control window while the driver is paused, and PostgreSQL waits', async () => {
    const c = await countedClient();
    const { result } = await startPaused(c);
    await new Promise((resolve) => setTimeout(resolve, 500));
    const received = c.counter.received;
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(c.counter.received).toBe(received);
    // The window, plus what the driver had consumed before it paused.
    expect(received).toBeLessThanOrEqual(WINDOW_TO_CLIENT_BYTES + 64 * 1024 + 16 * 1024);
    expect(received).toBeLessThan((ROWS * 1000) / 2);
    const activity = await watcher.query('SELECT wait_event FROM pg_stat_activity WHERE pid = $1', [c.pid]);
    expect(activity.rows).toEqual([{ wait_event: 'ClientWrite' }]);

    c.stream.resume();
    const rows = ((await result) as pg.QueryResult).rows;
    expect(rows).toHaveLength(ROWS);
    expect(rows.every((row) => row.filler === 'x'.repeat(1000))).toBe(true);
    await c.client.end();
  });

  it('ends the backend within 1 s when a paused client goes away in the middle of a large result', async () => {
    const c = await countedClient();
    await startPaused(c);
    await new Promise((resolve) => setTimeout(resolve, 200));
    c.stream.destroy();
    expect(await msUntilBackendGone(watcher, c.pid, 1000)).toBeLessThan(1000);
  });
});

describe('backpressure from PostgreSQL to the driver', () => {
  it('copies 100 MB in with COPY FROM STDIN, holding the client back while PostgreSQL stalls', async () => {
    await watcher.query(`
      DROP TABLE IF EXISTS e2e_bigcopy;
      CREATE TABLE e2e_bigcopy (line text);
      CREATE OR REPLACE FUNCTION e2e_stall() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN IF NEW.line = 'stall' THEN PERFORM pg_sleep(2); END IF; RETURN NEW; END $$;
      CREATE TRIGGER e2e_stall BEFORE INSERT ON e2e_bigcopy FOR EACH ROW EXECUTE FUNCTION e2e_stall();`);
    const counter = { sent: 0 };
    class Counted extends WebSocket {
      override send(data: never, ...rest: never[]) {
        if (typeof data !== 'string') counter.sent += (data as Uint8Array).length;
        return super.send(data, ...rest);
      }
    }
    const client = bridgeClient(bridge.url, {}, { WebSocket: Counted as never });
    await client.connect();
    const ROWS_100MB = 100_000;
    const row = `${'y'.repeat(999)}\n`;
    const lines = (function* () {
      yield 'stall\n';
      for (let i = 1; i < ROWS_100MB; i++) yield row;
    })();
    const started = counter.sent;
    const copying = pipeline(Readable.from(lines), client.query(copyFrom('COPY e2e_bigcopy FROM STDIN')));
    await new Promise((resolve) => setTimeout(resolve, 1200));
    // PostgreSQL sleeps on the first row; only what its TCP buffers take (a few MiB on loopback)
    // and the window may be sent meanwhile.
    const sentWhileStalled = counter.sent - started;
    expect(sentWhileStalled).toBeLessThan(8 * 1024 * 1024 + WINDOW_TO_SERVER_BYTES);
    await copying;
    const { rows } = await client.query(
      'SELECT count(*)::int AS n, sum(length(line))::bigint AS bytes FROM e2e_bigcopy',
    );
    expect(rows).toEqual([{ n: ROWS_100MB, bytes: String(5 + (ROWS_100MB - 1) * 999) }]);
    expect(counter.sent - started).toBeGreaterThan(100_000_000);
    await client.end();
    await watcher.query('DROP TABLE e2e_bigcopy; DROP FUNCTION e2e_stall()');
  }, 120_000);
});

/** The bridge sent one FATAL ErrorResponse with `fields`, and closed with `reason`. */
function expectRefused(session: RawSession, reason: string, fields: Record<string, string>): void {
  const messages = readMessages(session.received);
  expect(messages.map((m) => m.type)).toEqual(['E']);
  expect(errorFields(messages[0]!.body)).toMatchObject(fields);
  expect(session.closeReason).toBe(reason);
}

describe('flow-control messages', () => {
  it.each([
    ['not a flow-control message', 'ack'],
    ['an echo of a mark the bridge never sent', 'aAAAAAAAAAAAA'],
    ['a byte count, which the retired v1 used', '1048576'],
  ])('refuses a text message that is %s with 08P01', async (_, text) => {
    const session = await rawSession(bridge.url, [text], 5000, [FLOW_CONTROL_PROTOCOL]);
    expectRefused(session, 'INVALID_ACK', { C: '08P01', M: 'invalid flow-control acknowledgement' });
  });

  it.each([
    ['before any byte', [] as Array<Uint8Array | string>],
    ['right after another mark, with no byte between', [startupMessage({ user: 'postgres' }), 'm0']],
  ])('refuses a mark that covers no bytes, %s, with 08P01: each mark costs the bridge an echo', async (_, before) => {
    const session = await rawSession(bridge.url, [...before, 'm1', 'm2']);
    expectRefused(session, 'EMPTY_MARK', { C: '08P01', M: 'the client sent a flow-control mark that covers no bytes' });
    // The mark that covered the StartupMessage frees too little to be echoed on its own.
    expect(session.texts.filter((text) => text.startsWith('a'))).toEqual([]);
  });

  it('echoes a client that marks after every message once per quarter window freed, not once per mark', async () => {
    // Each echo is a message the bridge sends whether or not the client reads: one per mark would
    // let a client that never reads have the bridge queue one for every few bytes it sends.
    const db = postgres();
    const client = await HostileClient.open(bridge.url);
    let echoes = 0;
    client.ws.on('message', (data: Buffer, isBinary: boolean) => {
      if (!isBinary && String(data).startsWith('a')) echoes += 1;
    });
    await client.login({ user: db.user, password: db.password, database: db.database });
    const statement = query(`SELECT '${'x'.repeat(1000)}'`);
    const [rounds, perRound] = [5, 60];
    let marks = 0;
    for (let round = 0; round < rounds; round++) {
      // A round stays well inside the 256 KiB window, so only the bridge's echoes decide.
      for (let i = 0; i < perRound; i++) {
        client.send(statement);
        client.text(`m${marks++}`);
      }
      for (let ready = 0; ready < perRound;) if ((await client.next()).type === 'Z') ready += 1;
    }
    const sent = rounds * perRound * statement.length;
    expect(marks).toBe(300);
    expect(echoes).toBeGreaterThanOrEqual(Math.floor(sent / (WINDOW_TO_SERVER_BYTES / 4)) - 1);
    expect(echoes).toBeLessThanOrEqual(Math.floor(sent / (WINDOW_TO_SERVER_BYTES / 4)));
    client.send(terminate());
    expect((await client.ended).reason).toBe('client closed the connection');
  });

  it('serves a client socket sending more messages than the message window, its marks reopening it', async () => {
    // pg sends each query as its own write, so each is a WebSocket message of 14 bytes: 6,000 of
    // them are far below the byte window and past the message window (MESSAGE_WINDOW_TO_SERVER).
    const client = bridgeClient(bridge.url);
    await client.connect();
    for (let i = 0; i < 6000; i++) expect((await client.query('SELECT 1 AS one')).rows).toEqual([{ one: 1 }]);
    await client.end();
    expect(6000).toBeGreaterThan(MESSAGE_WINDOW_TO_SERVER);
  });

  it('refuses a client past the message window with 08P01, keepalives counted too', async () => {
    const chunks = Array.from({ length: MESSAGE_WINDOW_TO_SERVER + 10 }, () => KEEPALIVE);
    const session = await rawSession(bridge.url, chunks);
    expectRefused(session, 'FLOW_WINDOW_EXCEEDED', { C: '08P01', M: 'the client sent past its flow-control window' });
  });

  it('refuses a client that keeps more marks outstanding than an honest one can, with 08P01', async () => {
    // Toward a server that never answers the SSLRequest, the session stays connecting: nothing the
    // client sends is consumed, so no mark is echoed.
    const silent = await silentServer();
    const stalled = await startBridge({
      bindings: { PG_HOST: '127.0.0.1', PG_PORT: String(silent.port), PG_TLS: 'require' },
    });
    try {
      const chunks: Array<Uint8Array | string> = [startupMessage({ user: 'postgres' })];
      for (let i = 0; i <= MAX_OUTSTANDING_MARKS; i++) chunks.push(query('SELECT 1'), `m${i}`);
      const session = await rawSession(stalled.url, chunks);
      expectRefused(session, 'FLOW_WINDOW_EXCEEDED', { C: '08P01' });
    } finally {
      await stalled.stop();
      await silent.stop();
    }
  });
});
