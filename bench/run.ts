/**
 * `npm run bench`: pg over direct TCP, pg through the bridge (client shim → Worker in workerd →
 * PostgreSQL), and pg through a blind relay Worker in the same workerd (bench/blind-relay.js: the
 * same gathering of PostgreSQL's bytes, nothing checked), in the same run against the same
 * server. Prints the bridge against direct TCP, and the bridge against the blind relay: its own
 * overhead. All legs to PostgreSQL are plain TCP so the comparison is like for like.
 */
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import WebSocket from 'ws';
import { Socket } from '../client/index.js';
import { bundleWorker, startBridge } from '../dev/bridge.js';
import { startPostgres } from '../dev/postgres.js';

const SELECT1_QUERIES = Number(process.env.BENCH_QUERIES ?? 5000);
const BULK_BYTES = 50_000_000;
const BULK_RUNS = Number(process.env.BENCH_BULK_RUNS ?? 9);

const db = await startPostgres();
const bridge = await startBridge({
  // The bridge and the blind relay in one Worker: one workerd, one isolate.
  script: await bundleWorker(fileURLToPath(new URL('bench-worker.js', import.meta.url))),
  bindings: {
    PG_HOST: db.host,
    PG_PORT: String(db.port),
    PG_TLS: 'off',
    ...(process.env.BENCH_NO_FLOW_CONTROL && { FLOW_CONTROL: 'offer' }),
  },
});
const credentials = { user: db.user, password: db.password, database: db.database };
const over = (url: string, options: { flowControl?: boolean } = {}) =>
  new pg.Client({
    ...credentials,
    stream: () => new Socket({ url, WebSocket: WebSocket as never, ...options }) as never,
  });
const clients = {
  direct: new pg.Client({ ...credentials, host: db.host, port: db.port, ssl: false }),
  bridge: over(bridge.url, { flowControl: !process.env.BENCH_NO_FLOW_CONTROL }),
  relay: over(new URL('/blind', bridge.url).href, { flowControl: false }),
} as const;
type Name = keyof typeof clients;
const names = Object.keys(clients) as Name[];
const each = <T>(make: () => T) => Object.fromEntries(names.map((name) => [name, make()])) as Record<Name, T>;

try {
  await Promise.all(names.map((name) => clients[name].connect()));

  // Interleaved rounds, so drift in machine load hits every path alike.
  const latencies = each(() => [] as number[]);
  for (const name of names) for (let i = 0; i < 300; i++) await clients[name].query('SELECT 1');
  const rounds = 10;
  for (let round = 0; round < rounds; round++) {
    for (const name of names) {
      for (let i = 0; i < SELECT1_QUERIES / rounds; i++) {
        const start = process.hrtime.bigint();
        await clients[name].query('SELECT 1');
        latencies[name].push(Number(process.hrtime.bigint() - start) / 1000);
      }
    }
  }

  /** MB/s for a 50 MB result in rows of `rowBytes`, median of BULK_RUNS runs per path. */
  const bulk = async (rowBytes: number) => {
    const rows = BULK_BYTES / rowBytes;
    const sql = `SELECT repeat('x', ${rowBytes}) FROM generate_series(1, ${rows})`;
    const throughput = each(() => [] as number[]);
    for (let run = 0; run < BULK_RUNS; run++) {
      for (const name of names) {
        const start = performance.now();
        const result = await clients[name].query({ text: sql, rowMode: 'array' });
        const seconds = (performance.now() - start) / 1000;
        if (result.rows.length !== rows) throw new Error(`${name}: expected ${rows} rows`);
        throughput[name].push(BULK_BYTES / 1e6 / seconds);
      }
    }
    return medians(throughput);
  };
  const small = await bulk(1000);
  const large = await bulk(100_000);

  const latency = medians(latencies);
  console.log(`SELECT 1 round trip, ${latencies.direct.length} queries each (µs):`);
  for (const name of names) {
    console.log(
      `  ${name.padEnd(7)} median ${latency[name].toFixed(0)}  p99 ${percentile(latencies[name], 0.99).toFixed(0)}`,
    );
  }
  console.log(`${BULK_BYTES / 1e6} MB result, median of ${BULK_RUNS} runs (MB/s):`);
  console.log(`  ${''.padEnd(7)} ${'1 KB rows'.padStart(10)} ${'100 KB rows'.padStart(12)}`);
  for (const name of names) {
    console.log(`  ${name.padEnd(7)} ${small[name].toFixed(1).padStart(10)} ${large[name].toFixed(1).padStart(12)}`);
  }
  // Against the blind relay, higher is better everywhere: its latency over the bridge's, the bridge's throughput over its.
  const overhead = {
    select1: latency.relay / latency.bridge,
    rows1kb: small.bridge / small.relay,
    rows100kb: large.bridge / large.relay,
  };
  console.log(`select1_latency_ratio=${(latency.bridge / latency.direct).toFixed(2)}`);
  console.log(`bulk_throughput_ratio=${(small.bridge / small.direct).toFixed(2)}`);
  console.log(`relay_overhead_ratio_select1=${overhead.select1.toFixed(2)}`);
  console.log(`relay_overhead_ratio_1kb_rows=${overhead.rows1kb.toFixed(2)}`);
  console.log(`relay_overhead_ratio_100kb_rows=${overhead.rows100kb.toFixed(2)}`);
  console.log(`relay_overhead_ratio=${Math.min(...Object.values(overhead)).toFixed(2)}`);
} finally {
  await Promise.allSettled(names.map((name) => clients[name].end()));
  await bridge.stop();
  await db.stop();
}

function medians<K extends string>(samples: Record<K, number[]>): Record<K, number> {
  return Object.fromEntries(
    Object.entries<number[]>(samples).map(([name, values]) => [name, median(values)]),
  ) as Record<K, number>;
}

function median(values: number[]): number {
  return percentile(values, 0.5);
}

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!;
}
