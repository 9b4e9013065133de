/**
 * `npm run bench:pgbench`: Debian's pgbench straight to PostgreSQL (TCP + TLS) and through
 * `pgwire-bridge tunnel` (TCP → tunnel → WebSocket → Worker in workerd → TLS → PostgreSQL), in the
 * same run against the same server, the TPC-B-like script and the select-only one. Prints tps,
 * average latency and the ratio tunnel/direct. PGBENCH_SECONDS (default 10) and PGBENCH_CLIENTS
 * (default 4) change the runs.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import WebSocket from 'ws';
import { explainingRefusals, startTunnel } from '../cli/tunnel.js';
import { startBridge } from '../dev/bridge.js';
import { startPostgres } from '../dev/postgres.js';

const run = promisify(execFile);
const SECONDS = Number(process.env.PGBENCH_SECONDS ?? 10);
const CLIENTS = Number(process.env.PGBENCH_CLIENTS ?? 4);

const db = await startPostgres();
const bridge = await startBridge({
  bindings: { PG_HOST: db.host, PG_PORT: String(db.port), PG_TLS: 'require' },
  trustedCaPem: db.caPem,
});
const tunnel = await startTunnel({
  url: bridge.url,
  host: '127.0.0.1',
  port: 0,
  WebSocket: explainingRefusals(WebSocket),
});

const login = { PGUSER: db.user, PGPASSWORD: db.password, PGDATABASE: db.database };
const paths = {
  direct: { ...login, PGHOST: db.host, PGPORT: String(db.port), PGSSLMODE: 'require' },
  tunnel: { ...login, PGHOST: tunnel.host, PGPORT: String(tunnel.port), PGSSLMODE: 'disable' },
} as const;

interface Figures {
  tps: number;
  latencyMs: number;
  transactions: number;
}

async function pgbench(env: Record<string, string>, args: string[]): Promise<Figures> {
  const { stdout } = await run('pgbench', args, { env: { ...process.env, ...env }, maxBuffer: 1 << 24 });
  const figure = (pattern: RegExp) => {
    const match = pattern.exec(stdout);
    if (!match) throw new Error(`pgbench printed no ${pattern.source}:\n${stdout}`);
    return Number(match[1]);
  };
  return {
    tps: figure(/tps = ([\d.]+)/),
    latencyMs: figure(/latency average = ([\d.]+) ms/),
    transactions: figure(/number of transactions actually processed: (\d+)/),
  };
}

try {
  await run('pgbench', ['-i', '-s', '1', '-q'], { env: { ...process.env, ...paths.direct } });
  const runArgs = ['-n', '-c', String(CLIENTS), '-j', String(Math.min(CLIENTS, 2)), '-T', String(SECONDS)];
  console.log(`pgbench, scale 1, ${CLIENTS} clients, ${SECONDS} s per run, same server, same run:`);
  const ratios: string[] = [];
  for (const [script, extra] of [
    ['tpcb-like', []],
    ['select-only', ['-S']],
  ] as const) {
    const direct = await pgbench(paths.direct, [...runArgs, ...extra]);
    const tunnelled = await pgbench(paths.tunnel, [...runArgs, ...extra]);
    for (const [name, f] of [
      ['direct (TCP + TLS)', direct],
      ['tunnel → bridge → TLS', tunnelled],
    ] as const) {
      console.log(
        `  ${script.padEnd(12)} ${name.padEnd(22)} tps ${f.tps.toFixed(1).padStart(8)}  latency ${f.latencyMs.toFixed(2).padStart(6)} ms  (${f.transactions} transactions)`,
      );
    }
    ratios.push(`${script.replace('-', '_')}_tps_ratio=${(tunnelled.tps / direct.tps).toFixed(2)}`);
  }
  for (const line of ratios) console.log(line);
} finally {
  await tunnel.close();
  await bridge.stop();
  await db.stop();
}
