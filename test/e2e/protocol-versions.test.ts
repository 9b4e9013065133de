import { describe, expect, it } from 'vitest';
import { bridgeAndWatcher, eventually, postgres, rawSession } from '../support/clients.js';
import { RawClient } from '../support/raw-client.js';
import { cancelRequest, errorFields, query } from '../support/wire.js';

const suite = bridgeAndWatcher();

const login = () => ({ user: postgres().user, password: postgres().password, database: postgres().database });

/** Runs pg_sleep on `client`, cancels it over a fresh WebSocket with the given key, and returns the error fields. */
async function cancelSleep(client: RawClient, key: Uint8Array) {
  client.send(query('SELECT pg_sleep(30)'));
  await eventually(
    () =>
      suite.watcher.query('SELECT 1 FROM pg_stat_activity WHERE pid = $1 AND state = $2', [client.processId, 'active']),
    (result) => result.rowCount === 1,
  );
  const cancel = await rawSession(suite.bridge.url, [cancelRequest(client.processId, key)]);
  expect(cancel.closeCode).toBe(1000);
  const reply = await client.until('Z');
  return reply.find((m) => m.type === 'E');
}

describe('protocol 3.2 and cancellation through the bridge', () => {
  it('connects with protocol 3.2 and receives the longer BackendKeyData key', async () => {
    const client = await RawClient.connect(suite.bridge.url, login(), 2);
    expect(client.serverMessages.some((m) => m.type === 'v')).toBe(false);
    expect(client.secretKey.length).toBe(32);
    client.send(query('SELECT 42'));
    const reply = await client.until('Z');
    expect(reply.map((m) => m.type)).toEqual(['T', 'D', 'C', 'Z']);
    client.close();
  });

  it('relays NegotiateProtocolVersion to a client asking for 3.3, which then goes on', async () => {
    const client = await RawClient.connect(suite.bridge.url, login(), 3, { '_pq_.bridge_test': 'on' });
    const negotiate = client.serverMessages.find((m) => m.type === 'v');
    expect(negotiate).toBeDefined();
    const body = Buffer.from(negotiate!.body);
    expect(body.readInt32BE(0)).toBe(196610); // newest version the server supports: 3.2
    expect(body.readInt32BE(4)).toBe(1); // one option it did not recognise
    expect(body.subarray(8).toString()).toBe('_pq_.bridge_test\0');
    client.send(query('SELECT 1'));
    expect((await client.until('Z')).map((m) => m.type)).toEqual(['T', 'D', 'C', 'Z']);
    client.close();
  });

  it('cancels a 3.0 session with its 4-byte key over a fresh WebSocket', async () => {
    const client = await RawClient.connect(suite.bridge.url, login(), 0);
    expect(client.secretKey.length).toBe(4);
    const error = await cancelSleep(client, client.secretKey);
    expect(errorFields(error!.body)).toMatchObject({ C: '57014', M: 'canceling statement due to user request' });
    client.close();
  });

  it('cancels a 3.2 session with its 32-byte key over a fresh WebSocket', async () => {
    const client = await RawClient.connect(suite.bridge.url, login(), 2);
    expect(client.secretKey.length).toBe(32);
    const error = await cancelSleep(client, client.secretKey);
    expect(errorFields(error!.body)).toMatchObject({ C: '57014' });
    client.close();
  });
});
