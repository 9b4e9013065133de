import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startBridge, type RunningBridge } from '../../dev/bridge.js';
import type { PostgresInfo } from '../../dev/postgres.js';
import { directClient, postgres, startTlsBridge } from '../support/clients.js';
import { debianPostgresInstalled, startDebianPostgres } from '../support/debian-postgres.js';
import { psql, runTool, startTunnelProcess, type TunnelProcess } from '../support/tunnel.js';

// Real tools that speak TCP — Debian's psql, pgbench, pg_dump and pg_restore, and psycopg2 —
// through `pgwire-bridge tunnel` and a bridge that reaches PostgreSQL with PG_TLS=require.
let bridge: RunningBridge;
let tunnel: TunnelProcess;
let dir: string;

beforeAll(async () => {
  bridge = await startTlsBridge();
  tunnel = await startTunnelProcess(bridge.url);
  dir = await mkdtemp(join(tmpdir(), 'pgwire-bridge-tools-'));
});
afterAll(async () => {
  await tunnel?.stop();
  await bridge?.stop();
  await rm(dir, { recursive: true, force: true });
});

/** libpq's environment for a tool pointed at the tunnel. */
function libpqEnv(through: TunnelProcess, db: PostgresInfo = postgres()): Record<string, string> {
  return {
    PGHOST: through.host,
    PGPORT: String(through.port),
    PGUSER: db.user,
    PGPASSWORD: db.password,
    PGDATABASE: db.database,
    PGSSLMODE: 'disable',
  };
}

describe('psql through the tunnel', () => {
  it('runs a scripted session in which an error leaves the session usable', async () => {
    const script = [
      'DROP TABLE IF EXISTS tools_session;',
      'CREATE TABLE tools_session (id int PRIMARY KEY, label text);',
      "INSERT INTO tools_session VALUES (1, 'one'), (2, 'two');",
      'SELECT 1 / 0;',
      "INSERT INTO tools_session VALUES (3, 'three');",
      'BEGIN;',
      "INSERT INTO tools_session VALUES (4, 'four');",
      'ROLLBACK;',
      "SELECT string_agg(id || ':' || label, ',' ORDER BY id) FROM tools_session;",
    ].join('\n');
    const result = await psql(tunnel, ['-At', '-v', 'VERBOSITY=verbose'], { input: script });
    expect(result.code).toBe(0);
    expect(result.stderr).toContain('22012');
    expect(result.stdout.trim().split('\n').at(-1)).toBe('1:one,2:two,3:three');
  });

  it('copies in and out with \\copy, byte for byte', async () => {
    const rows = Array.from({ length: 20_000 }, (_, i) => `${i},"row ${i} é ✓, with a comma"`).join('\n') + '\n';
    const source = join(dir, 'in.csv');
    const copied = join(dir, 'out.csv');
    await writeFile(source, rows);
    const script = [
      'SET client_min_messages = warning;',
      'DROP TABLE IF EXISTS tools_copy;',
      'CREATE TABLE tools_copy (id int, label text);',
      `\\copy tools_copy FROM '${source}' WITH (FORMAT csv)`,
      `\\copy (SELECT * FROM tools_copy ORDER BY id) TO '${copied}' WITH (FORMAT csv, FORCE_QUOTE (label))`,
    ].join('\n');
    const result = await psql(tunnel, ['-v', 'ON_ERROR_STOP=1'], { input: script });
    expect([result.code, result.stderr]).toEqual([0, '']);
    expect(result.stdout).toContain('COPY 20000');
    expect(await readFile(copied, 'utf8')).toBe(rows);
  });
});

describe('pgbench through the tunnel', () => {
  it('initialises, then runs a timed benchmark whose transactions all reached the server', async () => {
    const env = libpqEnv(tunnel);
    const init = await runTool('pgbench', ['-i', '-s', '1', '-q'], { env, timeoutMs: 60_000 });
    expect(init.code).toBe(0);
    const run = await runTool('pgbench', ['-c', '2', '-j', '1', '-T', '2', '-n'], { env, timeoutMs: 30_000 });
    expect(run.code).toBe(0);
    const processed = Number(/number of transactions actually processed: (\d+)/.exec(run.stdout)?.[1]);
    const failed = Number(/number of failed transactions: (\d+)/.exec(run.stdout)?.[1] ?? 0);
    expect(processed).toBeGreaterThan(20);
    expect(failed).toBe(0);
    expect(Number(/tps = ([\d.]+)/.exec(run.stdout)?.[1])).toBeGreaterThan(0);
    // Every transaction of the TPC-B-like script appends one history row.
    const watcher = directClient();
    await watcher.connect();
    const { rows } = await watcher.query('SELECT count(*)::int AS n FROM pgbench_history');
    expect(rows[0].n).toBe(processed);
    const balances = await watcher.query(
      'SELECT (SELECT sum(abalance) FROM pgbench_accounts) = (SELECT sum(delta) FROM pgbench_history) AS consistent',
    );
    expect(balances.rows[0].consistent).toBe(true);
    await watcher.end();
  });
});

describe('psycopg2 (Debian python3-psycopg2) through the tunnel', () => {
  it('logs in, runs parameterised queries and a transaction, and survives an error', async () => {
    const program = `
import json, os, psycopg2
conn = psycopg2.connect(host=os.environ["PGHOST"], port=os.environ["PGPORT"], user=os.environ["PGUSER"],
                        password=os.environ["PGPASSWORD"], dbname=os.environ["PGDATABASE"], sslmode="prefer")
out = {}
cur = conn.cursor()
cur.execute("SELECT %s::int + %s::int, %s::text, ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()", (40, 2, "é ✓"))
out["row"] = list(cur.fetchone())
try:
    cur.execute("SELECT 1 / 0")
except psycopg2.Error as e:
    out["error"] = e.pgcode
conn.rollback()
cur.execute("CREATE TEMP TABLE t (n int)")
cur.executemany("INSERT INTO t VALUES (%s)", [(i,) for i in range(100)])
conn.commit()
cur.execute("SELECT count(*), sum(n) FROM t")
out["sum"] = list(cur.fetchone())
conn.close()
print(json.dumps(out))
`;
    const result = await runTool('/usr/bin/python3', ['-c', program], { env: libpqEnv(tunnel) });
    expect(result.stderr).toBe('');
    expect(JSON.parse(result.stdout)).toEqual({ row: [42, 'é ✓', true], error: '22012', sum: [100, 4950] });
  });
});

describe.runIf(debianPostgresInstalled())('pg_dump and pg_restore through the tunnel', () => {
  // Debian's pg_dump 15 refuses newer servers, so this bridge's target is Debian's PostgreSQL 15.
  let server: Awaited<ReturnType<typeof startDebianPostgres>>;
  let bridge15: RunningBridge;
  let tunnel15: TunnelProcess;

  beforeAll(async () => {
    server = await startDebianPostgres();
    bridge15 = await startBridge({
      bindings: { PG_HOST: server.host, PG_PORT: String(server.port), PG_TLS: 'require' },
      trustedCaPem: server.caPem,
    });
    tunnel15 = await startTunnelProcess(bridge15.url);
  }, 60_000);
  afterAll(async () => {
    await tunnel15?.stop();
    await bridge15?.stop();
    await server?.stop();
  });

  it('dumps a database and restores it into another one, identical', async () => {
    const env = libpqEnv(tunnel15, server);
    const setup = [
      'CREATE DATABASE source;',
      'CREATE DATABASE copy;',
      '\\connect source',
      'CREATE TABLE items (id serial PRIMARY KEY, name text NOT NULL, price numeric(10, 2), tags text[]);',
      "INSERT INTO items (name, price, tags) SELECT 'item ' || i, i * 1.25, ARRAY['t' || (i % 7)] FROM generate_series(1, 5000) i;",
      'CREATE INDEX items_name ON items (name);',
      'CREATE VIEW cheap AS SELECT * FROM items WHERE price < 10;',
      "CREATE FUNCTION total() RETURNS numeric LANGUAGE sql AS 'SELECT sum(price) FROM items';",
      "COMMENT ON TABLE items IS 'restored through the bridge';",
    ].join('\n');
    const created = await psql(tunnel15, ['-v', 'ON_ERROR_STOP=1', '-q'], { input: setup }, server);
    expect([created.code, created.stderr]).toEqual([0, '']);

    const archive = join(dir, 'source.dump');
    const dump = await runTool('pg_dump', ['-Fc', '-d', 'source', '-f', archive], { env, timeoutMs: 60_000 });
    expect([dump.code, dump.stderr]).toEqual([0, '']);
    const restore = await runTool('pg_restore', ['-d', 'copy', '--no-owner', archive], { env, timeoutMs: 60_000 });
    expect([restore.code, restore.stderr]).toEqual([0, '']);

    // The two databases dump to the same SQL (pg_dump's random \\restrict key aside) and hold the same rows.
    const plain = async (database: string) => {
      const { code, stdout } = await runTool('pg_dump', ['-d', database, '--no-owner'], { env, timeoutMs: 60_000 });
      expect(code).toBe(0);
      return stdout.replace(/^\\(un)?restrict .*$/gm, '');
    };
    const [source, copy] = await Promise.all([plain('source'), plain('copy')]);
    expect(source).toContain('CREATE TABLE public.items');
    expect(copy).toBe(source);
    const digest = (database: string) =>
      psql(
        tunnel15,
        ['-At', '-d', database, '-c', "SELECT md5(string_agg(i::text, ',' ORDER BY id)), total() FROM items i"],
        {},
        server,
      );
    expect((await digest('copy')).stdout).toBe((await digest('source')).stdout);
  }, 60_000);
});
