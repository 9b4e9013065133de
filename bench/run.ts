/**
 * `npm run bench`: pg over direct TCP and pg through the bridge (client shim → Worker in workerd →
 * PostgreSQL), in the same run against the same server, printed as ratios bridge/direct.
 * Both legs to PostgreSQL are plain TCP so the comparison is like for like.
 */
import pg from 'pg';
import WebSocket from 'ws';
import { Socket } from '../client/index.js';
import { startBridge } from '../dev/bridge.js';
import { startPostgres } from '../dev/postgres.js';

const SELECT1_QUERIES = Number(process.env.BENCH_QUERIES ?? 5000);
const BULK_ROWS = 50_000;
const BULK_ROW_BYTES = 1000;
const BULK_RUNS = Number(process.env.BENCH_BULK_RUNS ?? 5);

const db = await startPostgres();
const bridge = await startBridge({ bindings: { PG_HOST: db.host, PG_PORT: String(db.port), PG_TLS: 'off' } });
const credentials = { user: db.user, password: db.password, database: db.database };
const direct = new pg.Client({ ...credentials, host: db.host, port: db.port, ssl: false });
const bridged = new pg.Client({
  ...credentials,
  stream: () => new Socket({ url: bridge.url, WebSocket: WebSocket as never }) as never,
});

try {
  await Promise.all([direct.connect(), bridged.connect()]);
  const clients = { direct, bridge: bridged } as const;

  // Interleaved rounds, so drift in machine load hits both sides alike.
  const latencies = { direct: [] as number[], bridge: [] as number[] };
  for (const client of Object.values(clients)) for (let i = 0; i < 300; i++) await client.query('SELECT 1');
  const rounds = 10;
  for (let round = 0; round < rounds; round++) {
    for (const [name, client] of Object.entries(clients) as Array<[keyof typeof clients, pg.Client]>) {
      for (let i = 0; i < SELECT1_QUERIES / rounds; i++) {
        const start = process.hrtime.bigint();
        await client.query('SELECT 1');
        latencies[name].push(Number(process.hrtime.bigint() - start) / 1000);
      }
    }
  }

  const sql = `SELECT repeat('x', ${BULK_ROW_BYTES}) FROM generate_series(1, ${BULK_ROWS})`;
  const megabytes = (BULK_ROWS * BULK_ROW_BYTES) / 1e6;
  const throughput = { direct: [] as number[], bridge: [] as number[] };
  for (let run = 0; run < BULK_RUNS; run++) {
    for (const [name, client] of Object.entries(clients) as Array<[keyof typeof clients, pg.Client]>) {
      const start = performance.now();
      const result = await client.query({ text: sql, rowMode: 'array' });
      const seconds = (performance.now() - start) / 1000;
      if (result.rows.length !== BULK_ROWS) throw new Error(`${name}: expected ${BULK_ROWS} rows`);
      throughput[name].push(megabytes / seconds);
    }
  }

  const latency = { direct: median(latencies.direct), bridge: median(latencies.bridge) };
  const p99 = { direct: percentile(latencies.direct, 0.99), bridge: percentile(latencies.bridge, 0.99) };
  const mbps = { direct: median(throughput.direct), bridge: median(throughput.bridge) };
  console.log(`SELECT 1 round trip, ${latencies.direct.length} queries each (µs):`);
  console.log(`  direct  median ${latency.direct.toFixed(0)}  p99 ${p99.direct.toFixed(0)}`);
  console.log(`  bridge  median ${latency.bridge.toFixed(0)}  p99 ${p99.bridge.toFixed(0)}`);
  console.log(`${megabytes} MB result, median of ${BULK_RUNS} runs (MB/s):`);
  console.log(`  direct  ${mbps.direct.toFixed(1)}`);
  console.log(`  bridge  ${mbps.bridge.toFixed(1)}`);
  console.log(`select1_latency_ratio=${(latency.bridge / latency.direct).toFixed(2)}`);
  console.log(`bulk_throughput_ratio=${(mbps.bridge / mbps.direct).toFixed(2)}`);
} finally {
  await Promise.allSettled([direct.end(), bridged.end()]);
  await bridge.stop();
  await db.stop();
}

function median(values: number[]): number {
  return percentile(values, 0.5);
}

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!;
}
