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

const SELECT1_QUERIES = Number(process.env.BENCH_QUERIES ?? 6000);
const BULK_MB = Number(process.env.BENCH_BULK_MB ?? 20);
const BULK_ROUNDS = Number(process.env.BENCH_BULK_ROUNDS ?? 42);

const db = await startPostgres();
const bridge = await startBridge({
  // The bridge and the blind relay in one Worker: one workerd, one isolate.
  script: await bundleWorker(fileURLToPath(new URL('bench-worker.js', import.meta.url))),
  bindings: {
    PG_HOST: db.host,
    PG_PORT: String(db.port),
    PG_TLS: 'off',
    ...(process.env.BENCH_NO_FLOW_CONTROL && { FLOW_CONTROL: 'offer' }),
    // The bridge's own setting, passed through: to measure other windows against the default.
    ...(process.env.WINDOW_TO_CLIENT_BYTES && { WINDOW_TO_CLIENT_BYTES: process.env.WINDOW_TO_CLIENT_BYTES }),
  },
});
const credentials = { user: db.user, password: db.password, database: db.database };
/** Flow control's traffic on the bridge's path: the bridge's marks, and the client's echoes of them. */
const flow = { marks: 0, echoes: 0 };
/** The bridge path's WebSocket, counting `m…` texts received and `a…` texts sent. */
class CountingWebSocket extends WebSocket {
  constructor(...args: ConstructorParameters<typeof WebSocket>) {
    super(...args);
    this.on('message', (data: WebSocket.RawData, isBinary: boolean) => {
      if (!isBinary && data.toString().startsWith('m')) flow.marks += 1;
    });
  }

  override send(data: unknown, ...rest: unknown[]): void {
    if (typeof data === 'string' && data.startsWith('a')) flow.echoes += 1;
    (super.send as (...args: unknown[]) => void)(data, ...rest);
  }
}
const over = (url: string, options: { flowControl?: boolean } = {}, webSocket: unknown = WebSocket) =>
  new pg.Client({
    ...credentials,
    stream: () => new Socket({ url, WebSocket: webSocket as never, ...options }) as never,
  });
const clients = {
  direct: new pg.Client({ ...credentials, host: db.host, port: db.port, ssl: false }),
  // BENCH_SELF_CHECK=1: the bridge's column is a second blind relay client, so the ratios printed
  // show how far two identical paths land apart on this machine.
  bridge: process.env.BENCH_SELF_CHECK
    ? over(new URL('/blind', bridge.url).href, { flowControl: false })
    : over(bridge.url, { flowControl: !process.env.BENCH_NO_FLOW_CONTROL }, CountingWebSocket),
  relay: over(new URL('/blind', bridge.url).href, { flowControl: false }),
} as const;
type Name = keyof typeof clients;
const names = Object.keys(clients) as Name[];
/**
 * Every order of the paths in turn, one per round: each path then runs after each other one as
 * often, so whatever a run leaves behind for the next (the client's garbage, the server's caches)
 * falls on every path alike. (Rotating one order is not enough: the path after `direct` was always
 * `bridge`.)
 */
const orders = permutations(names);
/** Rounds in a row resampled together for the interval (see interval()): each order once. */
const BLOCK_ROUNDS = orders.length;
const each = <T>(make: () => T) => Object.fromEntries(names.map((name) => [name, make()])) as Record<Name, T>;

try {
  await Promise.all(names.map((name) => clients[name].connect()));

  // Interleaved rounds, so drift in machine load hits every path alike.
  const latencies = each(() => [] as number[]);
  for (const name of names) for (let i = 0; i < 300; i++) await clients[name].query('SELECT 1');
  const rounds = 2 * orders.length;
  for (let round = 0; round < rounds; round++) {
    for (const name of orders[round % orders.length]!) {
      for (let i = 0; i < SELECT1_QUERIES / rounds; i++) {
        const start = process.hrtime.bigint();
        await clients[name].query('SELECT 1');
        latencies[name].push(Number(process.hrtime.bigint() - start) / 1000);
      }
    }
  }

  /**
   * Each path streams BULK_MB of rows of `rowBytes`, BULK_ROUNDS times, taking turns within each
   * round in the round's order (`orders`). Rows are read as pg streams them (a 'row'
   * listener) and not kept: kept, each result is tens of MB of strings for the client's garbage
   * collector, whose pauses move a run by more than the paths differ. Pairing runs by round keeps
   * drift in the machine's load out of the ratios.
   */
  const bulk = async (rowBytes: number) => {
    const rows = (BULK_MB * 1e6) / rowBytes;
    const sql = `SELECT repeat('x', ${rowBytes}) FROM generate_series(1, ${rows})`;
    const throughput = each(() => [] as number[]);
    for (const name of names) await streamRows(clients[name], sql); // warm-up, not counted
    const before = { ...flow };
    for (let round = 0; round < BULK_ROUNDS; round++) {
      for (const name of orders[round % orders.length]!) {
        const start = performance.now();
        const received = await streamRows(clients[name], sql);
        const seconds = (performance.now() - start) / 1000;
        if (received !== rows) throw new Error(`${name}: expected ${rows} rows, got ${received}`);
        throughput[name].push(BULK_MB / seconds);
      }
    }
    const perResult = {
      marks: (flow.marks - before.marks) / BULK_ROUNDS,
      echoes: (flow.echoes - before.echoes) / BULK_ROUNDS,
    };
    return Object.assign(throughput, { flow: perResult });
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
  console.log(`${BULK_MB} MB results streamed, ${BULK_ROUNDS} rounds, median (MB/s):`);
  console.log(`  ${''.padEnd(7)} ${'1 KB rows'.padStart(10)} ${'100 KB rows'.padStart(12)}`);
  for (const name of names) {
    const [rows1kb, rows100kb] = [median(small[name]), median(large[name])];
    console.log(`  ${name.padEnd(7)} ${rows1kb.toFixed(1).padStart(10)} ${rows100kb.toFixed(1).padStart(12)}`);
  }
  console.log(
    `bridge flow control per result: 1 KB rows ${small.flow.marks.toFixed(1)} marks, ` +
      `${small.flow.echoes.toFixed(1)} echoes; 100 KB rows ${large.flow.marks.toFixed(1)} marks, ` +
      `${large.flow.echoes.toFixed(1)} echoes`,
  );
  // Against the blind relay, higher is better everywhere: its latency over the bridge's, the
  // bridge's throughput over its — per round, the median of the rounds' ratios.
  const overhead = {
    select1: latency.relay / latency.bridge,
    rows1kb: pairedRatio(small.bridge, small.relay),
    rows100kb: pairedRatio(large.bridge, large.relay),
  };
  console.log(`select1_latency_ratio=${(latency.bridge / latency.direct).toFixed(2)}`);
  console.log(`bulk_throughput_ratio=${pairedRatio(small.bridge, small.direct).toFixed(2)}`);
  console.log(`relay_overhead_ratio_select1=${overhead.select1.toFixed(2)}`);
  for (const [key, bridgeRuns, relayRuns] of [
    ['1kb_rows', small.bridge, small.relay],
    ['100kb_rows', large.bridge, large.relay],
  ] as const) {
    const [low, high] = interval(bridgeRuns, relayRuns);
    console.log(
      `relay_overhead_ratio_${key}=${pairedRatio(bridgeRuns, relayRuns).toFixed(2)}` +
        `  (95% interval ${low.toFixed(2)}–${high.toFixed(2)})`,
    );
  }
  console.log(`relay_overhead_ratio=${Math.min(...Object.values(overhead)).toFixed(2)}`);
} finally {
  await Promise.allSettled(names.map((name) => clients[name].end()));
  await bridge.stop();
  await db.stop();
}

function permutations<T>(items: readonly T[]): T[][] {
  if (items.length <= 1) return [[...items]];
  return items.flatMap((item, i) =>
    permutations([...items.slice(0, i), ...items.slice(i + 1)]).map((rest) => [item, ...rest]),
  );
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

/** Runs `sql`, counting its rows as they stream in without keeping them. */
function streamRows(client: pg.Client, sql: string): Promise<number> {
  return new Promise((resolve, reject) => {
    let received = 0;
    const query = new pg.Query({ text: sql, rowMode: 'array' } as pg.QueryConfig);
    query.on('row', () => void (received += 1));
    query.on('end', () => resolve(received));
    query.on('error', reject);
    void client.query(query);
  });
}

/** `a[round] / b[round]` for every round. */
function roundRatios(a: number[], b: number[]): number[] {
  return a.map((value, round) => value / b[round]!);
}

/** The median over rounds of `a[round] / b[round]`. */
function pairedRatio(a: number[], b: number[]): number {
  return median(roundRatios(a, b));
}

/**
 * Where the paired ratio's median would fall in 95% of repeated benchmarks, estimated by resampling
 * the rounds (a percentile bootstrap): on two shared cores, runs of one path alone spread by tens of
 * percent, so the interval says how far apart the paths must be for the ratio to mean anything.
 * Rounds are resampled in blocks of BLOCK_ROUNDS in a row, not one by one: a slow stretch of the
 * machine spans several rounds, and resampling them as if independent made the interval too narrow.
 */
function interval(a: number[], b: number[], resamples = 2000): [number, number] {
  const ratios = roundRatios(a, b);
  const block = Math.min(BLOCK_ROUNDS, ratios.length);
  const medianOfResamples: number[] = [];
  for (let i = 0; i < resamples; i++) {
    const resample: number[] = [];
    while (resample.length < ratios.length) {
      const start = Math.floor(Math.random() * (ratios.length - block + 1));
      resample.push(...ratios.slice(start, start + block));
    }
    medianOfResamples.push(median(resample.slice(0, ratios.length)));
  }
  return [percentile(medianOfResamples, 0.025), percentile(medianOfResamples, 0.975)];
}
