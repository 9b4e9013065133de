import { describe, expect, it } from 'vitest';
import { bridgeClient, bridgePostgresJs, tlsBridgeForSuite } from '../support/clients.js';

// The bridge answers SSLRequest with N (the WebSocket is the encrypted link). A driver's `ssl`
// option must then work as 'prefer' does or fail at once with a clear error: never hang.
const suite = tlsBridgeForSuite();

const bridged = (url: string, options: Record<string, unknown> = {}) =>
  bridgePostgresJs(url, { connect_timeout: 10, ...options });

async function timed<T>(work: Promise<T>): Promise<{ ms: number; value: T | undefined; error: unknown }> {
  const started = Date.now();
  try {
    return { ms: Date.now() - started, value: await work, error: undefined };
  } catch (error) {
    return { ms: Date.now() - started, value: undefined, error };
  }
}

describe("postgres.js's ssl option through the socket", () => {
  it("works with ssl: 'prefer', as without TLS", async () => {
    const sql = bridged(suite.bridge.url, { ssl: 'prefer' });
    expect(await sql`SELECT 1 AS one`).toEqual([{ one: 1 }]);
    await sql.end();
  });

  it.each(['require', 'verify-full', { rejectUnauthorized: false }])(
    'fails at once with ssl: %j (ERR_SSL_NOT_OFFERED), and sql.end() returns at once',
    async (ssl) => {
      const sql = bridged(suite.bridge.url, { ssl });
      const query = await timed(sql`SELECT 1`);
      expect(query.error).toMatchObject({ code: 'ERR_SSL_NOT_OFFERED' });
      expect(query.ms).toBeLessThan(2000);
      const end = await timed(sql.end());
      expect(end.ms).toBeLessThan(500);
    },
  );
});

describe("pg's ssl option through the socket", () => {
  it('fails at once: pg itself refuses a server that answers N', async () => {
    const client = bridgeClient(suite.bridge.url, { ssl: true });
    const connect = await timed(client.connect());
    expect(String(connect.error)).toMatch(/does not support SSL/);
    expect(connect.ms).toBeLessThan(2000);
  });
});

describe('a WebSocket that fails while opening', () => {
  it.each([
    ['a bridge nobody listens on', 'ws://127.0.0.1:1/v1'],
    ['a URL the WebSocket refuses', 'ftp://127.0.0.1/v1'],
  ])('fails postgres.js at once: %s', async (_, url) => {
    const sql = bridged(url);
    const query = await timed(sql`SELECT 1`);
    expect(query.error).toMatchObject({ code: expect.stringMatching(/^(ECONNREFUSED|ERR_INVALID_URL)$/) });
    expect(query.ms).toBeLessThan(2000);
    const end = await timed(sql.end());
    expect(end.ms).toBeLessThan(500);
  });
});
