import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type pg from 'pg';
import { from as copyFrom, to as copyTo } from 'pg-copy-streams';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningBridge } from '../../dev/bridge.js';
import {
  backendPids,
  bridgeClient,
  bridgeTarget,
  directClient,
  msUntilBackendGone,
  startTlsBridge,
} from '../support/clients.js';

// The main bridge speaks TLS to PostgreSQL, trusting the test CA as a deployment would trust its provider's.
let bridge: RunningBridge;
let viaBridge: pg.Client;
let direct: pg.Client;

beforeAll(async () => {
  bridge = await startTlsBridge();
  viaBridge = bridgeClient(bridge.url);
  direct = directClient();
  await Promise.all([viaBridge.connect(), direct.connect()]);
});

afterAll(async () => {
  await Promise.allSettled([viaBridge?.end(), direct?.end()]);
  await bridge?.stop();
});

/** Runs the same query over the bridge and over direct TCP; returns the bridge's result after comparing. */
async function same(query: string | pg.QueryConfig, values?: unknown[]): Promise<pg.QueryResult> {
  const [bridged, straight] = await Promise.all([viaBridge.query(query, values), direct.query(query, values)]);
  const shape = (result: pg.QueryResult | pg.QueryResult[]) =>
    [result]
      .flat()
      .map((r) => ({ rows: r.rows, command: r.command, fields: r.fields.map((f) => [f.name, f.dataTypeID]) }));
  expect(shape(bridged)).toEqual(shape(straight));
  return bridged;
}

describe('pg through the bridge, against real PostgreSQL', () => {
  it('authenticates with SCRAM-SHA-256 and reaches PostgreSQL over TLS', async () => {
    const { rows } = await viaBridge.query(
      `SELECT s.ssl, a.usename, current_setting('password_encryption') AS encryption
         FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) WHERE pid = pg_backend_pid()`,
    );
    expect(rows).toEqual([{ ssl: true, usename: 'postgres', encryption: 'scram-sha-256' }]);
    const hba = await direct.query("SELECT DISTINCT auth_method FROM pg_hba_file_rules WHERE type = 'host'");
    expect(hba.rows).toEqual([{ auth_method: 'scram-sha-256' }]);
  });

  it('runs simple queries with the same results as direct TCP', async () => {
    await same(
      `SELECT 1 AS one, 'two'::text AS two, now() IS NOT NULL AS ok, NULL::int AS nothing, '{1,2}'::int[] AS arr`,
    );
    const [first, second] = (await same('SELECT 1 AS a; SELECT 2 AS b')) as unknown as pg.QueryResult[];
    expect([first!.rows, second!.rows]).toEqual([[{ a: 1 }], [{ b: 2 }]]);
  });

  it('runs extended queries with parameters and named prepared statements', async () => {
    const sum = await same('SELECT $1::int + $2::int AS sum, $3::text AS label', [40, 2, 'é ✓']);
    expect(sum.rows).toEqual([{ sum: 42, label: 'é ✓' }]);
    for (const n of [1, 2, 3]) {
      await same({ name: 'squares', text: 'SELECT g * g AS sq FROM generate_series(1, $1::int) g', values: [n * 10] });
    }
    await same({ text: 'SELECT $1::bytea AS b', values: [Buffer.from([0, 1, 2, 255])] });
  });

  it('rolls a transaction back', async () => {
    await viaBridge.query('CREATE TABLE IF NOT EXISTS e2e_tx (n int)');
    await viaBridge.query('BEGIN');
    await viaBridge.query('INSERT INTO e2e_tx VALUES (1), (2)');
    expect((await viaBridge.query('SELECT count(*)::int AS n FROM e2e_tx')).rows).toEqual([{ n: 2 }]);
    await viaBridge.query('ROLLBACK');
    expect((await same('SELECT count(*)::int AS n FROM e2e_tx')).rows).toEqual([{ n: 0 }]);
  });

  it('reports a query error with its SQLSTATE and keeps the connection usable', async () => {
    await expect(viaBridge.query('SELECT 1 / 0')).rejects.toMatchObject({ code: '22012', severity: 'ERROR' });
    await expect(viaBridge.query('SELECT $1::int', ['x'])).rejects.toMatchObject({ code: '22P02' });
    expect((await viaBridge.query('SELECT 7 AS n')).rows).toEqual([{ n: 7 }]);
  });

  it('copies rows in with COPY FROM STDIN and out with COPY TO STDOUT', async () => {
    await viaBridge.query('CREATE TABLE IF NOT EXISTS e2e_copy (id int, name text)');
    await viaBridge.query('TRUNCATE e2e_copy');
    const lines = Array.from({ length: 20_000 }, (_, i) => `${i}\tname-${i}\n`);
    await pipeline(Readable.from(lines), viaBridge.query(copyFrom('COPY e2e_copy FROM STDIN')));
    expect((await same('SELECT count(*)::int AS n, sum(id)::bigint AS total FROM e2e_copy')).rows).toEqual([
      { n: 20_000, total: String((19_999 * 20_000) / 2) },
    ]);

    const copyOut = async (client: pg.Client) => {
      const chunks: Buffer[] = [];
      const stream = client.query(copyTo('COPY (SELECT * FROM e2e_copy ORDER BY id) TO STDOUT'));
      for await (const chunk of stream) chunks.push(chunk as Buffer);
      return Buffer.concat(chunks).toString();
    };
    const [bridged, straight] = await Promise.all([copyOut(viaBridge), copyOut(direct)]);
    expect(bridged).toBe(lines.join(''));
    expect(bridged).toBe(straight);
  });

  it('returns a 50 MB result identical to direct TCP', async () => {
    const sql = 'SELECT i, repeat(md5(i::text), 31) AS filler FROM generate_series(1, 50000) i';
    const digest = async (client: pg.Client) => {
      const result = await client.query({ text: sql, rowMode: 'array' });
      const hash = createHash('sha256');
      let bytes = 0;
      for (const [i, filler] of result.rows as Array<[number, string]>) {
        hash.update(`${i}:${filler}\n`);
        bytes += filler.length;
      }
      return { rows: result.rows.length, bytes, sha256: hash.digest('hex') };
    };
    const bridged = await digest(viaBridge);
    expect(bridged.rows).toBe(50_000);
    expect(bridged.bytes).toBeGreaterThanOrEqual(49_000_000);
    expect(bridged).toEqual(await digest(direct));
  });

  it('delivers NOTIFY to a LISTENing client promptly', async () => {
    await viaBridge.query('LISTEN e2e_channel');
    const received = new Promise<pg.Notification>((resolve) => viaBridge.once('notification', resolve));
    await direct.query("NOTIFY e2e_channel, 'hello through the bridge'");
    const notification = await received;
    expect(notification).toMatchObject({ channel: 'e2e_channel', payload: 'hello through the bridge' });
    await viaBridge.query('UNLISTEN e2e_channel');
  });

  // Through Hyperdrive the bridge logs in with the binding's credentials: the client's password is
  // not used, so this case belongs to the direct path only.
  if (!bridgeTarget.viaHyperdrive) {
    it("gives the wrong password PostgreSQL's own 28P01 error", async () => {
      const client = bridgeClient(bridge.url, { password: 'not-the-password' });
      await expect(client.connect()).rejects.toMatchObject({
        code: '28P01',
        severity: 'FATAL',
        message: 'password authentication failed for user "postgres"',
      });
    });
  }

  it('leaves no backend behind after the client ends', async () => {
    const client = bridgeClient(bridge.url);
    await client.connect();
    const { rows } = await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
    const pid = rows[0]!.pid;
    expect(await backendPids(direct)).toContain(pid);
    await client.end();
    await msUntilBackendGone(direct, pid);
  });
});
