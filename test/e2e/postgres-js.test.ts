import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import postgresJs from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningBridge } from '../../dev/bridge.js';
import {
  bridgeClient,
  bridgePostgresJs,
  bridgeTarget,
  eventually,
  postgres,
  startTlsBridge,
} from '../support/clients.js';

// postgres.js, unmodified, through the shim via its `socket` option; results compared with
// postgres.js over direct TCP.
let bridge: RunningBridge;
let viaBridge: postgresJs.Sql;
let direct: postgresJs.Sql;

const bridged = (url: string, options: postgresJs.Options<{}> = {}) => bridgePostgresJs(url, options);

beforeAll(async () => {
  const db = postgres();
  bridge = await startTlsBridge();
  viaBridge = bridged(bridge.url);
  direct = postgresJs({
    host: db.host,
    port: db.port,
    user: db.user,
    pass: db.password,
    database: db.database,
    ssl: { ca: db.caPem },
    onnotice: () => {},
  });
});
afterAll(async () => {
  await Promise.allSettled([viaBridge?.end(), direct?.end()]);
  await bridge?.stop();
});

describe('postgres.js through the bridge, against real PostgreSQL', () => {
  it('authenticates with SCRAM over TLS and runs simple and extended queries as direct TCP does', async () => {
    const [ssl] = await viaBridge`SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()`;
    expect(ssl).toEqual({ ssl: true });
    const query = (sql: postgresJs.Sql) =>
      sql`SELECT ${40}::int + ${2}::int AS sum, ${'é ✓'}::text AS label, now() IS NOT NULL AS ok`;
    expect([...(await query(viaBridge))]).toEqual([...(await query(direct))]);
    expect([...(await viaBridge.unsafe('SELECT 1 AS a'))]).toEqual([{ a: 1 }]);
  });

  it('rolls a transaction back, and keeps working after a query error', async () => {
    await viaBridge`CREATE TABLE IF NOT EXISTS e2e_js_tx (n int)`;
    await expect(
      viaBridge.begin(async (sql) => {
        await sql`INSERT INTO e2e_js_tx VALUES (1)`;
        throw new Error('roll back');
      }),
    ).rejects.toThrow('roll back');
    expect([...(await viaBridge`SELECT count(*)::int AS n FROM e2e_js_tx`)]).toEqual([{ n: 0 }]);
    await expect(viaBridge`SELECT 1 / 0`).rejects.toMatchObject({ code: '22012' });
    expect([...(await viaBridge`SELECT 7 AS n`)]).toEqual([{ n: 7 }]);
  });

  it('copies in and out', async () => {
    await viaBridge`DROP TABLE IF EXISTS e2e_js_copy`;
    await viaBridge`CREATE TABLE e2e_js_copy (id int, name text)`;
    const lines = Array.from({ length: 10_000 }, (_, i) => `${i}\tname-${i}\n`);
    await pipeline(Readable.from(lines), await viaBridge`COPY e2e_js_copy FROM STDIN`.writable());

    // postgres.js pauses its socket when its COPY stream is full and resumes it on the stream's next
    // read(); when CopyDone arrives in the same chunk as that CopyData (the bridge sends 64 KiB
    // messages), the stream ends and the socket stays paused. So COPY TO gets a connection of its own.
    const copier = bridged(bridge.url, { max: 1 });
    const out: Buffer[] = [];
    for await (const chunk of await copier`COPY (SELECT * FROM e2e_js_copy ORDER BY id) TO STDOUT`.readable()) {
      out.push(chunk as Buffer);
    }
    await copier.end({ timeout: 0 });
    expect(Buffer.concat(out).toString()).toBe(lines.join(''));
  });

  it('returns a 50 MB result identical to direct TCP', async () => {
    const digest = async (sql: postgresJs.Sql) => {
      const rows = await sql`SELECT i, repeat(md5(i::text), 31) AS filler FROM generate_series(1, 50000) i`.values();
      return createHash('sha256').update(JSON.stringify(rows)).digest('hex');
    };
    expect(await digest(viaBridge)).toBe(await digest(direct));
  });

  it('receives NOTIFY through LISTEN', async () => {
    let heard: (payload: string) => void;
    const received = new Promise<string>((resolve) => (heard = resolve));
    // listen() resolves once LISTEN has run, so the notification cannot come too early.
    await viaBridge.listen('e2e_js_channel', (payload) => heard(payload));
    await direct`SELECT pg_notify('e2e_js_channel', 'hello from direct')`;
    expect(await received).toBe('hello from direct');
  });

  it('cancels a long query with its own cancel path (a CancelRequest on a new socket)', async () => {
    const sleeping = viaBridge`SELECT pg_sleep(30.1)`;
    const outcome = sleeping.then(
      () => null,
      (error: unknown) => error,
    );
    await untilRunning('SELECT pg_sleep(30.1)');
    sleeping.cancel();
    expect(await outcome).toMatchObject({ code: '57014' });
  });

  // Through Hyperdrive the bridge logs in with the binding's credentials: the client's password is
  // not used, so this case belongs to the direct path only.
  if (!bridgeTarget.viaHyperdrive) {
    it("gives the wrong password PostgreSQL's 28P01", async () => {
      const sql = bridged(bridge.url, { pass: 'wrong', max: 1 });
      await expect(sql`SELECT 1`).rejects.toMatchObject({ code: '28P01' });
      await sql.end();
    });
  }
});

describe("pg's own cancel path through the bridge", () => {
  it('cancels a long query from a second client, which sends a CancelRequest through the shim', async () => {
    const client = bridgeClient(bridge.url);
    await client.connect();
    const query = client.query('SELECT pg_sleep(30.2)');
    const outcome = query.then(
      () => null,
      (error: unknown) => error,
    );
    await untilRunning('SELECT pg_sleep(30.2)');
    const canceller = bridgeClient(bridge.url) as unknown as { cancel(client: unknown, query: unknown): void };
    canceller.cancel(client, (client as unknown as { activeQuery: unknown }).activeQuery);
    expect(await outcome).toMatchObject({ code: '57014' });
    await client.end();
  });
});

/** Until `query` runs on the server: a CancelRequest sent earlier would find nothing to cancel. */
async function untilRunning(query: string): Promise<void> {
  const running = await eventually(
    async () =>
      (await direct`SELECT count(*)::int AS n FROM pg_stat_activity WHERE state = 'active' AND query = ${query}`)[0]!
        .n as number,
    (n) => n > 0,
    5000,
  );
  expect(running).toBeGreaterThan(0);
}
