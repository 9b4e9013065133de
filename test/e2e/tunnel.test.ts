import { SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WINDOW_TO_CLIENT_BYTES } from '../../common/flow-control.js';
import { startBridge, residentBytes, type RunningBridge } from '../../dev/bridge.js';
import { directClient, msUntilBackendGone, postgres, startTlsBridge } from '../support/clients.js';
import { psql, runTool, startTunnelProcess, type TunnelProcess } from '../support/tunnel.js';

// `pgwire-bridge tunnel`, the built command, between libpq's psql and a TLS bridge.
let bridge: RunningBridge;
let tunnel: TunnelProcess;

beforeAll(async () => {
  bridge = await startTlsBridge();
  tunnel = await startTunnelProcess(bridge.url);
});
afterAll(async () => {
  await tunnel?.stop();
  await bridge?.stop();
});

describe('pgwire-bridge tunnel', () => {
  it('prints one ready line with a loopback connection string', () => {
    expect(tunnel.host).toBe('127.0.0.1');
    expect(tunnel.connectionString).toBe(`postgresql://127.0.0.1:${tunnel.port}/?sslmode=disable`);
  });

  it("lets libpq log in over the bridge's TLS leg, sslmode=prefer included (the bridge answers N)", async () => {
    const query = 'SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()';
    const disabled = await psql(tunnel, ['-At', '-c', query]);
    expect([disabled.code, disabled.stdout, disabled.stderr]).toEqual([0, 't\n', '']);
    const db = postgres();
    const url = `postgresql://${db.user}@127.0.0.1:${tunnel.port}/${db.database}?sslmode=prefer`;
    const preferred = await runTool('psql', [url, '-X', '-At', '-c', query], { env: { PGPASSWORD: db.password } });
    expect([preferred.code, preferred.stdout]).toEqual([0, 't\n']);
  });

  it('forwards the CancelRequest of a psql interrupted during pg_sleep (SIGINT)', async () => {
    const watcher = directClient();
    await watcher.connect();
    let psqlPid = 0;
    const running = psql(tunnel, ['-v', 'VERBOSITY=verbose', '-c', 'SELECT pg_sleep(30)'], {
      onSpawn: (pid) => (psqlPid = pid),
    });
    for (let i = 0; i < 100; i++) {
      const { rows } = await watcher.query("SELECT 1 FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(30)'");
      if (rows.length > 0) break;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    const started = Date.now();
    process.kill(psqlPid, 'SIGINT');
    const result = await running;
    expect(Date.now() - started).toBeLessThan(5000);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('57014');
    await watcher.end();
  });

  it('holds a large result back at PostgreSQL while psql cannot write it out, and then delivers all of it', async () => {
    const watcher = directClient();
    await watcher.connect();
    const rows = 150_000; // 150 MB: far more than the bridge's window toward the tunnel
    const copy = `COPY (SELECT repeat('x', 999) FROM generate_series(1, ${rows})) TO STDOUT`;
    const before = residentBytes(tunnel.pid);
    // psql's stdout is a pipe nobody reads for 3 s: psql stops reading, so must everything before it.
    const done = runTool(
      'sh',
      [
        '-c',
        `psql "$1" -X -c "$2" | (sleep 3; wc -c)`,
        'sh',
        `${tunnel.connectionString}&user=${postgres().user}`,
        copy,
      ],
      {
        env: { PGPASSWORD: postgres().password },
      },
    );
    // PostgreSQL shows ClientWrite for moments mid-stream too: held back is ClientWrite on ten
    // looks in a row, half a second, with the tunnel's window full by then.
    let inARow = 0;
    for (let i = 0; i < 100 && inARow < 10; i++) {
      await new Promise((resolve) => setTimeout(resolve, 50));
      const { rows: found } = await watcher.query<{ wait_event: string | null }>(
        'SELECT wait_event FROM pg_stat_activity WHERE query = $1',
        [copy],
      );
      inARow = found[0]?.wait_event === 'ClientWrite' ? inARow + 1 : 0;
    }
    expect(inARow).toBe(10);
    // The tunnel holds what the bridge's window let through (and node's garbage), not the result.
    expect(residentBytes(tunnel.pid) - before).toBeLessThan(2 * WINDOW_TO_CLIENT_BYTES);
    const result = await done;
    expect(Number(result.stdout.trim())).toBe(rows * 1000);
    await watcher.end();
  });
});

describe('pgwire-bridge tunnel when the bridge cannot be reached', () => {
  let guarded: RunningBridge;
  const secret = 'a-secret-of-at-least-thirty-two-characters';
  beforeAll(async () => {
    const db = postgres();
    guarded = await startBridge({
      bindings: { PG_HOST: db.host, PG_PORT: String(db.port), JWT_SECRET: secret, JWT_AUDIENCE: 'tunnel-test' },
      trustedCaPem: db.caPem,
    });
  });
  afterAll(() => guarded?.stop());

  it.each([
    ['without a token', [], '401 a token is required'],
    ['with an invalid token', ['--token', 'not-a-token'], '401 the token is invalid or expired'],
  ])('tells psql why, as a FATAL error it prints, %s', async (_, args, reason) => {
    const refused = await startTunnelProcess(guarded.url, args);
    const result = await psql(refused, ['-c', 'SELECT 1']);
    await refused.stop();
    expect(result.code).toBe(2);
    expect(result.stderr).toContain(`FATAL:  could not connect to the bridge: ${reason}`);
  });

  it('lets psql in with a valid token', async () => {
    const token = await new SignJWT({})
      .setProtectedHeader({ alg: 'HS256' })
      .setAudience('tunnel-test')
      .setExpirationTime('5m')
      .sign(new TextEncoder().encode(secret));
    const allowed = await startTunnelProcess(guarded.url, ['--token', token]);
    const result = await psql(allowed, ['-At', '-c', 'SELECT 42']);
    await allowed.stop();
    expect([result.code, result.stdout]).toEqual([0, '42\n']);
  });

  it('tells psql an unreachable bridge is unreachable', async () => {
    const nowhere = await startTunnelProcess('ws://127.0.0.1:1/v1');
    const result = await psql(nowhere, ['-c', 'SELECT 1']);
    await nowhere.stop();
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/FATAL: {2}could not connect to the bridge: .*ECONNREFUSED/);
  });

  it('closes cleanly on Ctrl-C, ending its sessions', async () => {
    const watcher = directClient();
    await watcher.connect();
    const closing = await startTunnelProcess(bridge.url);
    // An idle session: psql waits for more input.
    let psqlPid = 0;
    const session = psql(closing, [], {
      input: "SELECT 'ctrl-c' AS marker;\n",
      keepStdinOpen: true,
      onSpawn: (spawned) => (psqlPid = spawned),
    });
    let pid: number | undefined;
    for (let i = 0; i < 100 && pid === undefined; i++) {
      await new Promise((resolve) => setTimeout(resolve, 50));
      const { rows } = await watcher.query(
        "SELECT pid FROM pg_stat_activity WHERE query = 'SELECT ''ctrl-c'' AS marker;' AND state = 'idle'",
      );
      pid = rows[0]?.pid;
    }
    expect(pid).toBeDefined();
    expect(await closing.stop()).toBe(0);
    expect(await msUntilBackendGone(watcher, pid!)).toBeLessThan(2000);
    process.kill(psqlPid, 'SIGKILL');
    await session;
    await watcher.end();
  });
});
