/**
 * `npm run bench:cpu`: the Worker's CPU time per GiB relayed, each way, read from outside as the
 * workerd process's user + system time (/proc/PID/stat, Linux). A Worker's CPU time accrues over
 * its whole WebSocket session against one `[limits] cpu_ms`, so this says how much a session can
 * move before the platform ends it. BENCH_CPU_MIB sets the amount (default 1024 each way).
 */
import { readFileSync } from 'node:fs';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import pg from 'pg';
import { from as copyFrom, to as copyTo } from 'pg-copy-streams';
import WebSocket from 'ws';
import { Socket } from '../client/index.js';
import { startBridge } from '../dev/bridge.js';
import { startPostgres } from '../dev/postgres.js';

const MIB = Number(process.env.BENCH_CPU_MIB ?? 1024);
const ROW = `${'x'.repeat(1023)}\n`;
const ROWS = MIB * 1024;

const db = await startPostgres();
const bridge = await startBridge({ bindings: { PG_HOST: db.host, PG_PORT: String(db.port), PG_TLS: 'off' } });
const client = new pg.Client({
  user: db.user,
  password: db.password,
  database: db.database,
  stream: () => new Socket({ url: bridge.url, WebSocket: WebSocket as never }) as never,
});

/** workerd's CPU seconds so far: utime + stime, in clock ticks of 1/100 s. */
function cpuSeconds(): number {
  const fields = readFileSync(`/proc/${bridge.pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

async function measure(label: string, move: () => Promise<void>): Promise<void> {
  const cpu = cpuSeconds();
  const started = performance.now();
  await move();
  const seconds = (performance.now() - started) / 1000;
  const perGib = ((cpuSeconds() - cpu) * 1024) / MIB;
  console.log(`${label}: ${MIB} MiB in ${seconds.toFixed(1)} s, workerd CPU ${perGib.toFixed(2)} s per GiB`);
}

try {
  if (bridge.pid === null) throw new Error('workerd process not found (Linux only)');
  await client.connect();
  await client.query(`
    CREATE TEMP TABLE sink (line text);
    CREATE FUNCTION pg_temp.discard() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NULL; END $$;
    CREATE TRIGGER discard BEFORE INSERT ON sink FOR EACH ROW EXECUTE FUNCTION pg_temp.discard();`);

  await measure('server → client (COPY TO STDOUT)', async () => {
    let bytes = 0;
    const source = client.query(copyTo(`COPY (SELECT repeat('x', 1023) FROM generate_series(1, ${ROWS})) TO STDOUT`));
    await pipeline(
      source,
      new Writable({
        write(chunk: Buffer, _encoding, done) {
          bytes += chunk.length;
          done();
        },
      }),
    );
    if (bytes !== ROWS * ROW.length) throw new Error(`received ${bytes} bytes, expected ${ROWS * ROW.length}`);
  });

  await measure('client → server (COPY FROM STDIN)', async () => {
    const block = ROW.repeat(64);
    const rows = (function* () {
      for (let i = 0; i < ROWS / 64; i++) yield block;
    })();
    await pipeline(Readable.from(rows), client.query(copyFrom('COPY sink FROM STDIN')));
  });
} finally {
  await client.end().catch(() => {});
  await bridge.stop();
  await db.stop();
}
