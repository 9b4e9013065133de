/**
 * Load through one local bridge: N concurrent pg clients × M queries each, every result
 * checksummed against the same queries over direct TCP. `npm run load` runs 200 × 1,000
 * (LOAD_CLIENTS, LOAD_QUERIES change it) and prints throughput, p50/p99 latency, and the counts
 * of lost, corrupted and failed queries. test/e2e/load.test.ts runs a smaller load.
 */
import { createHash } from 'node:crypto';
import pg from 'pg';
import WebSocket from 'ws';
import { Socket } from '../client/index.js';

export interface LoadResult {
  clients: number;
  queriesPerClient: number;
  completed: number;
  lost: number;
  corrupted: number;
  errors: number;
  seconds: number;
  p50Micros: number;
  p99Micros: number;
}

interface Login {
  host: string;
  port: number;
  user: string;
  password: string;
  database: string;
}

const SQL = 'SELECT $1::int AS n, md5($1::text) AS h';
const valueOf = (client: number, query: number) => client * 1_000_003 + query;

/** Digest of one client's results, in order; the same for the bridge and direct TCP when nothing is lost or changed. */
async function runClient(client: pg.Client, id: number, queries: number, latencies: number[]) {
  const hash = createHash('sha256');
  let completed = 0;
  let errors = 0;
  let corrupted = 0;
  for (let q = 0; q < queries; q++) {
    const n = valueOf(id, q);
    const started = process.hrtime.bigint();
    try {
      const { rows } = await client.query<{ n: number; h: string }>(SQL, [n]);
      latencies.push(Number(process.hrtime.bigint() - started) / 1000);
      completed += 1;
      if (rows.length !== 1 || rows[0]!.n !== n) corrupted += 1;
      hash.update(`${rows[0]?.n}:${rows[0]?.h};`);
    } catch {
      errors += 1;
    }
  }
  return { digest: hash.digest('hex'), completed, errors, corrupted };
}

export async function runLoad(bridgeUrl: string, login: Login, clients: number, queries: number): Promise<LoadResult> {
  const credentials = { user: login.user, password: login.password, database: login.database };
  const connect = async (make: () => pg.Client) => {
    const c = make();
    c.on('error', () => {});
    await c.connect();
    return c;
  };
  const bridged = await Promise.all(
    Array.from({ length: clients }, () =>
      connect(
        () =>
          new pg.Client({
            ...credentials,
            stream: () => new Socket({ url: bridgeUrl, WebSocket: WebSocket as never }) as never,
          }),
      ),
    ),
  );
  const latencies: number[] = [];
  const started = performance.now();
  const results = await Promise.all(bridged.map((client, id) => runClient(client, id, queries, latencies)));
  const seconds = (performance.now() - started) / 1000;
  await Promise.all(bridged.map((client) => client.end()));

  // The same queries over direct TCP, a few connections at a time, give the expected digests.
  const direct = await Promise.all(
    Array.from({ length: Math.min(clients, 16) }, () =>
      connect(() => new pg.Client({ ...credentials, host: login.host, port: login.port })),
    ),
  );
  const expected: string[] = new Array(clients);
  await Promise.all(
    direct.map(async (client, lane) => {
      for (let id = lane; id < clients; id += direct.length)
        expected[id] = (await runClient(client, id, queries, [])).digest;
    }),
  );
  await Promise.all(direct.map((client) => client.end()));

  latencies.sort((a, b) => a - b);
  const at = (p: number) => latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))] ?? NaN;
  const completed = results.reduce((sum, r) => sum + r.completed, 0);
  return {
    clients,
    queriesPerClient: queries,
    completed,
    lost: clients * queries - completed - results.reduce((sum, r) => sum + r.errors, 0),
    corrupted: results.reduce((sum, r, id) => sum + r.corrupted + (r.digest === expected[id] ? 0 : 1), 0),
    errors: results.reduce((sum, r) => sum + r.errors, 0),
    seconds,
    p50Micros: at(0.5),
    p99Micros: at(0.99),
  };
}

export function describeLoad(r: LoadResult): string {
  return [
    `load: ${r.clients} clients × ${r.queriesPerClient} queries through one bridge`,
    `  completed=${r.completed} lost=${r.lost} corrupted=${r.corrupted} errors=${r.errors}`,
    `  throughput=${(r.completed / r.seconds).toFixed(0)} queries/s over ${r.seconds.toFixed(1)} s`,
    `  latency p50=${r.p50Micros.toFixed(0)} µs p99=${r.p99Micros.toFixed(0)} µs`,
  ].join('\n');
}
