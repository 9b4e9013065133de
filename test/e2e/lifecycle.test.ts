import type pg from 'pg';
import WebSocket from 'ws';
import { describe, expect, it } from 'vitest';
import {
  backendPids,
  bridgeAndWatcher,
  bridgeClient,
  eventually,
  msUntilBackendGone,
  rawSession,
} from '../support/clients.js';
import { Bytes, cancelRequest } from '../support/wire.js';

const suite = bridgeAndWatcher();

/** A bridged pg client and the `ws` WebSocket under its socket, to break it the hard way. */
async function connectedWithWebSocket(): Promise<{ client: pg.Client; ws: WebSocket; pid: number; errors: Error[] }> {
  let ws: WebSocket | undefined;
  class Recorded extends WebSocket {
    constructor(...args: ConstructorParameters<typeof WebSocket>) {
      super(...args);
      ws = this;
    }
  }
  const client = bridgeClient(suite.bridge.url, {}, { WebSocket: Recorded as never });
  const errors: Error[] = [];
  client.on('error', (error) => errors.push(error));
  await client.connect();
  const { rows } = await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
  return { client, ws: ws!, pid: rows[0]!.pid, errors };
}

describe('session lifecycle', () => {
  it('ends the backend when the WebSocket drops without a close frame', async () => {
    const { ws, pid, errors } = await connectedWithWebSocket();
    expect(await backendPids(suite.watcher)).toContain(pid);
    ws.terminate();
    expect(await msUntilBackendGone(suite.watcher, pid, 1000)).toBeLessThan(1000);
    expect(errors[0]).toMatchObject({ code: 'ECONNRESET' });
  });

  it('relays PostgreSQL terminating the backend: the client sees 57P01 and the connection ends', async () => {
    const { client, pid, errors } = await connectedWithWebSocket();
    const ended = new Promise((resolve) => client.once('end', resolve));
    await suite.watcher.query('SELECT pg_terminate_backend($1)', [pid]);
    await ended;
    expect(errors[0]).toMatchObject({ code: '57P01', severity: 'FATAL' });
  });

  it('rejects a running query promptly when the server ends the session', async () => {
    const { client, pid } = await connectedWithWebSocket();
    const running = client.query('SELECT pg_sleep(30)').then(
      () => null,
      (error: unknown) => error,
    );
    await eventually(
      () => suite.watcher.query("SELECT 1 FROM pg_stat_activity WHERE pid = $1 AND state = 'active'", [pid]),
      (result) => result.rowCount === 1,
    );
    const terminated = Date.now();
    await suite.watcher.query('SELECT pg_terminate_backend($1)', [pid]);
    expect(await running).toMatchObject({ code: '57P01' });
    expect(Date.now() - terminated).toBeLessThan(1000);
  });

  it('forwards a CancelRequest on its own WebSocket and cancels the running query', async () => {
    const client = bridgeClient(suite.bridge.url);
    await client.connect();
    const keys = client as unknown as { processID: number; secretKey: number };
    const running = client.query('SELECT pg_sleep(30)').then(
      () => null,
      (error: unknown) => error,
    );
    await eventually(
      () => suite.watcher.query("SELECT 1 FROM pg_stat_activity WHERE pid = $1 AND state = 'active'", [keys.processID]),
      (result) => result.rowCount === 1,
    );
    const key = new Bytes().int32(keys.secretKey).build();
    const cancel = await rawSession(suite.bridge.url, [cancelRequest(keys.processID, key)]);
    expect(cancel.received).toEqual(new Uint8Array());
    expect(cancel.closeCode).toBe(1000);
    expect(await running).toMatchObject({ code: '57014', message: 'canceling statement due to user request' });
    await client.end();
  });
});
