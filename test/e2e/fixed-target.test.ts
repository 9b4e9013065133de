import { describe, expect, it } from 'vitest';
import { bridgeClient, postgres, rawSession, tlsBridgeForSuite } from '../support/clients.js';
import { errorFields, readMessages, startupMessage } from '../support/wire.js';

// With one fixed server (PG_HOST), the driver's host and port travel to the bridge: a driver
// pointed at another server is refused before any TCP, not quietly given the fixed one.
const suite = tlsBridgeForSuite();

describe("the driver's host and port, with one fixed server", () => {
  it("works with the drivers' defaults and with the fixed server's own address", async () => {
    const db = postgres();
    for (const config of [{}, { host: 'localhost', port: 5432 }, { host: db.host, port: db.port }]) {
      const client = bridgeClient(suite.bridge.url, config);
      await client.connect();
      expect((await client.query('SELECT 1 AS one')).rows).toEqual([{ one: 1 }]);
      await client.end();
    }
  });

  it('refuses another server with FATAL 28000 instead of ignoring it', async () => {
    for (const config of [
      { host: 'unreachable.example', port: 5432 },
      { host: 'localhost', port: 6543 },
    ]) {
      const client = bridgeClient(suite.bridge.url, config);
      await expect(client.connect()).rejects.toMatchObject({ code: '28000', severity: 'FATAL' });
    }
  });

  it('refuses a host with NULs in it with the same one ErrorResponse: its text cannot forge fields', async () => {
    const url = new URL(suite.bridge.url);
    url.search = new URLSearchParams({ host: 'a\0C08P01\0SWARNING', port: '5432' }).toString();
    const session = await rawSession(url.href, [startupMessage({ user: 'postgres' })]);
    const messages = readMessages(session.received);
    expect(messages.map((m) => m.type)).toEqual(['E']);
    const fields = errorFields(messages[0]!.body);
    expect(Object.keys(fields).sort()).toEqual(['C', 'M', 'S', 'V']);
    expect(fields).toMatchObject({ S: 'FATAL', C: '28000', M: expect.stringContaining('a\uFFFDC08P01\uFFFDSWARNING') });
  });
});
