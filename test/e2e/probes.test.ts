import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startBridge, type RunningBridge } from '../../dev/bridge.js';
import { bridgeClient, postgres, rawSession } from '../support/clients.js';
import { rawToPostgres } from '../support/direct-raw.js';
import { RawClient } from '../support/raw-client.js';
import {
  HTTP_GET,
  NMAP_SMB_PROBE,
  TLS_CLIENT_HELLO,
  errorFields,
  message,
  query,
  readMessages,
  startupMessage,
} from '../support/wire.js';

// The bytes real scanners and mistaken clients send, each compared with what PostgreSQL itself does.
let bridge: RunningBridge;
const STARTUP_TIMEOUT_MS = 300;

beforeAll(async () => {
  const db = postgres();
  bridge = await startBridge({
    bindings: {
      PG_HOST: db.host,
      PG_PORT: String(db.port),
      PG_TLS: 'off',
      STARTUP_TIMEOUT_MS: String(STARTUP_TIMEOUT_MS),
    },
  });
});
afterAll(async () => {
  await bridge?.stop();
});

const login = () => ({ user: postgres().user, password: postgres().password, database: postgres().database });
const direct = () => ({ host: postgres().host, port: postgres().port });

function fatal(received: Uint8Array): Record<string, string> {
  const messages = readMessages(received);
  expect(messages.map((m) => m.type)).toEqual(['E']);
  return errorFields(messages[0]!.body);
}

describe('probes', () => {
  it.each([
    ['an empty message', new Uint8Array()],
    ['a 1-byte message', Uint8Array.of(0)],
    ['a 3-byte message', Uint8Array.of(0, 0, 0)],
  ])('answers %s that never becomes a startup packet with 08P01 once the startup time is up', async (_, bytes) => {
    // PostgreSQL waits for authentication_timeout (60 s), then closes without a word.
    const started = Date.now();
    const session = await rawSession(bridge.url, [bytes]);
    expect(fatal(session.received)).toMatchObject({ S: 'FATAL', C: '08P01', M: 'incomplete startup packet' });
    expect(session.closeReason).toBe('INCOMPLETE_STARTUP');
    expect(Date.now() - started).toBeGreaterThanOrEqual(STARTUP_TIMEOUT_MS - 20);
  });

  it('answers protocol 2.0 with 0A000 and the message PostgreSQL puts in its old-style error', async () => {
    const bytes = startupMessage({ user: 'postgres' }, 2, 0);
    const [bridged, straight] = await Promise.all([rawSession(bridge.url, [bytes]), rawToPostgres(bytes)]);
    const ours = fatal(bridged.received);
    expect(ours).toMatchObject({ C: '0A000', M: 'unsupported frontend protocol 2.0: server supports 3.0 to 3.2' });
    // PostgreSQL answers a 2.0 client in the 2.0 format: 'E', then text.
    expect(String.fromCharCode(straight[0]!)).toBe('E');
    expect(Buffer.from(straight).toString('latin1')).toContain(ours.M);
  });

  it('refuses a second StartupMessage with 08P01, as PostgreSQL does', async () => {
    const second = startupMessage({ user: 'mallory', database: 'postgres' });
    const replies = await Promise.all(
      [bridge.url, direct()].map(async (target) => {
        const client = await RawClient.connect(target, login());
        client.send(second);
        await client.closed();
        // PostgreSQL adds where in its source it failed (F, L, R); the client acts on these fields.
        return client.drain().map((m) => {
          if (m.type !== 'E') return m.type;
          const { S, V, C, M } = errorFields(m.body);
          return { S, V, C, M };
        });
      }),
    );
    expect(replies[0]).toEqual(replies[1]);
    expect(replies[0]).toEqual([{ S: 'FATAL', V: 'FATAL', C: '08P01', M: 'invalid frontend message type 0' }]);
  });

  it('passes CopyData outside COPY on, which PostgreSQL ignores, and the session goes on', async () => {
    const replies = await Promise.all(
      [bridge.url, direct()].map(async (target) => {
        const client = await RawClient.connect(target, login());
        client.send(message('d', Uint8Array.of(1, 2, 3)));
        client.send(message('c'));
        client.send(query('SELECT 1'));
        const reply = await client.until('Z');
        client.close();
        return reply.map((m) => m.type);
      }),
    );
    expect(replies[0]).toEqual(['T', 'D', 'C', 'Z']);
    expect(replies[0]).toEqual(replies[1]);
  });

  it('keeps serving other clients while probes keep coming', async () => {
    const client: pg.Client = bridgeClient(bridge.url);
    await client.connect();
    let stop = false;
    let served = 0;
    const steady = (async () => {
      while (!stop) {
        const { rows } = await client.query('SELECT $1::int AS n', [served]);
        expect(rows).toEqual([{ n: served }]);
        served += 1;
      }
    })();
    const probes = [NMAP_SMB_PROBE, HTTP_GET, TLS_CLIENT_HELLO, startupMessage({ user: 'x' }, 4, 0)];
    const sessions = await Promise.all(
      Array.from({ length: 40 }, (_, i) => rawSession(bridge.url, [probes[i % probes.length]!])),
    );
    stop = true;
    await steady;
    await client.end();
    expect(sessions.every((s) => s.closeCode === 1002)).toBe(true);
    expect(served).toBeGreaterThan(0);
  });
});
