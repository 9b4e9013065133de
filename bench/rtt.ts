/**
 * `npm run bench:rtt`: round trips to the first row for a client that connects, runs one query and
 * goes (a serverless function, a page). A delaying TCP proxy (bench/delay-proxy.ts) adds RTT_DELAY_MS
 * (default 20) each way on the client's leg only, in front of the bridge (and of PostgreSQL for the
 * direct case); round trips = (time with the delay − time without) ÷ the added round trip. pg and
 * postgres.js, direct and through the bridge, with the client's own password (SCRAM) and with
 * edge-held credentials (a token), each with the StartupMessage in the upgrade and the classic
 * exchange. RTT_RUNS (default 9) runs each, medians.
 */
import { SignJWT } from 'jose';
import pg from 'pg';
import postgres from 'postgres';
import WebSocket from 'ws';
import { Socket } from '../client/index.js';
import { startBridge } from '../dev/bridge.js';
import { startPostgres } from '../dev/postgres.js';
import { startDelayProxy } from './delay-proxy.js';

const DELAY_MS = Number(process.env.RTT_DELAY_MS ?? 20);
const RUNS = Number(process.env.RTT_RUNS ?? 9);
const SECRET = 'a-shared-secret-of-at-least-32-characters';
const AUDIENCE = 'pgwire-bridge-rtt';

const db = await startPostgres();
const base = { PG_HOST: db.host, PG_PORT: String(db.port), PG_TLS: 'off' } as const;
const scramBridge = await startBridge({ bindings: base });
const edgeBridge = await startBridge({
  bindings: {
    ...base,
    JWT_SECRET: SECRET,
    JWT_AUDIENCE: AUDIENCE,
    PG_CREDENTIALS: JSON.stringify({ [db.user]: db.password }),
  },
});
const token = await new SignJWT({})
  .setProtectedHeader({ alg: 'HS256' })
  .setAudience(AUDIENCE)
  .setExpirationTime('1h')
  .sign(new TextEncoder().encode(SECRET));

const hostPort = (url: string) => {
  const { hostname, port } = new URL(url);
  return { host: hostname, port: Number(port) };
};
/** One proxy per target and delay, started once. */
const proxies = new Map<string, Awaited<ReturnType<typeof startDelayProxy>>>();
async function via(target: { host: string; port: number }, delay: number): Promise<number> {
  const key = `${target.host}:${target.port}:${delay}`;
  let proxy = proxies.get(key);
  if (!proxy) proxies.set(key, (proxy = await startDelayProxy(target, delay)));
  return proxy.port;
}
const throughProxy = (url: string, port: number) => {
  const parsed = new URL(url);
  parsed.port = String(port);
  return parsed.href;
};

type Path = 'direct' | 'bridge, SCRAM' | 'bridge, edge-held';
interface Case {
  readonly driver: 'pg' | 'postgres.js';
  readonly path: Path;
  readonly startupInUpgrade: boolean;
}

/** Milliseconds from nothing to the first row of `SELECT 1`, then the connection is closed. */
async function firstRow(c: Case, delay: number): Promise<number> {
  const bridge = c.path === 'bridge, edge-held' ? edgeBridge : scramBridge;
  const port = await via(c.path === 'direct' ? { host: db.host, port: db.port } : hostPort(bridge.url), delay);
  const socket = () =>
    new Socket({
      url: throughProxy(bridge.url, port),
      WebSocket: WebSocket as never,
      startupInUpgrade: c.startupInUpgrade,
      ...(c.path === 'bridge, edge-held' && { token }),
    });
  const credentials = { user: db.user, database: db.database };
  const password = c.path === 'bridge, edge-held' ? undefined : db.password;
  const started = performance.now();
  if (c.driver === 'pg') {
    const client = new pg.Client({
      ...credentials,
      ...(password && { password }),
      ...(c.path === 'direct' ? { host: '127.0.0.1', port, ssl: false } : { stream: () => socket() as never }),
    });
    await client.connect();
    await client.query('SELECT 1');
    const elapsed = performance.now() - started;
    await client.end();
    return elapsed;
  }
  const sql = postgres({
    ...credentials,
    ...(password && { pass: password }),
    ...(c.path === 'direct' ? { host: '127.0.0.1', port, ssl: false } : { socket: () => socket().connect() }),
    onnotice: () => {},
  } as postgres.Options<{}>);
  await sql`SELECT 1`;
  const elapsed = performance.now() - started;
  await sql.end();
  return elapsed;
}

const cases: Case[] = [];
for (const driver of ['pg', 'postgres.js'] as const) {
  cases.push({ driver, path: 'direct', startupInUpgrade: false });
  for (const path of ['bridge, SCRAM', 'bridge, edge-held'] as const) {
    for (const startupInUpgrade of [true, false]) cases.push({ driver, path, startupInUpgrade });
  }
}

try {
  const roundTrips = new Map<Case, number>();
  for (const c of cases) {
    await firstRow(c, 0); // warm up: JIT, the bridge's isolate, PostgreSQL's caches
    const times = { 0: [] as number[], [DELAY_MS]: [] as number[] };
    // Interleaved, so drift in machine load hits both alike.
    for (let run = 0; run < RUNS; run++) {
      for (const delay of [0, DELAY_MS]) times[delay]!.push(await firstRow(c, delay));
    }
    roundTrips.set(c, (median(times[DELAY_MS]!) - median(times[0]!)) / (2 * DELAY_MS));
  }

  console.log(
    `Round trips to the first row (connect, SELECT 1), ${DELAY_MS} ms added each way on the client's leg, median of ${RUNS} runs:`,
  );
  console.log(
    `  ${'driver'.padEnd(12)} ${'path'.padEnd(18)} ${'startup in upgrade'.padStart(18)} ${'classic'.padStart(8)}`,
  );
  const figure = (c: Case | undefined) => (c ? roundTrips.get(c)!.toFixed(1) : '');
  for (const c of cases.filter((c) => !(c.path !== 'direct' && !c.startupInUpgrade))) {
    const classic =
      c.path === 'direct' ? c : cases.find((o) => o.driver === c.driver && o.path === c.path && !o.startupInUpgrade);
    const inline = c.path === 'direct' ? undefined : c;
    console.log(
      `  ${c.driver.padEnd(12)} ${c.path.padEnd(18)} ${figure(inline).padStart(18)} ${figure(classic).padStart(8)}`,
    );
  }
  for (const c of cases.filter((c) => c.startupInUpgrade || c.path === 'direct')) {
    const name = `${c.driver === 'pg' ? 'pg' : 'postgresjs'}_${c.path === 'direct' ? 'direct' : c.path === 'bridge, SCRAM' ? 'bridge_scram' : 'bridge_edge'}`;
    console.log(`rtt_${name}=${roundTrips.get(c)!.toFixed(1)}`);
  }
} finally {
  await Promise.all([...proxies.values()].map((p) => p.stop()));
  await Promise.all([scramBridge.stop(), edgeBridge.stop()]);
  await db.stop();
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}
