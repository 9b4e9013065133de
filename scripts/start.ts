/**
 * `npm start`: a real PostgreSQL (embedded, SCRAM + TLS) and the bridge Worker in workerd, on this
 * machine. Prints one ready line with the WebSocket URL and the credentials to use.
 */
import { startBridge } from '../dev/bridge.js';
import { portIsFree, startPostgres } from '../dev/postgres.js';

const bridgePort = Number(process.env.PORT ?? 8787);
const postgresPort = Number(process.env.PG_PORT ?? 54329);
const verbose = process.env.VERBOSE === '1';
const log = (line: string) => {
  if (verbose) process.stderr.write(line.endsWith('\n') ? line : `${line}\n`);
};

for (const [setting, port] of [
  ['PORT', bridgePort],
  ['PG_PORT', postgresPort],
] as const) {
  if (!(await portIsFree(port)))
    fail(`port ${port} is already in use (another npm start?); set ${setting} to use another`);
}

const db = await startPostgres({ port: postgresPort, log }).catch((error: Error) => fail(error.message));
let bridge;
try {
  bridge = await startBridge({
    bindings: {
      PG_HOST: db.host,
      PG_PORT: String(db.port),
      PG_TLS: 'require',
      // Pages served from this machine may connect; a deployed bridge lists its own origins.
      ALLOWED_ORIGINS: 'http://localhost:*, http://127.0.0.1:*',
    },
    trustedCaPem: db.caPem,
    port: bridgePort,
    // The Worker's own logs (connect and TLS failures) are worth seeing while developing.
    log: (line) => process.stderr.write(line),
  });
} catch (error) {
  await db.stop();
  throw error;
}

console.log(
  `pgwire-bridge ready: ${bridge.url} user=${db.user} password=${db.password} database=${db.database}` +
    ` (PostgreSQL on ${db.host}:${db.port}, TLS to PostgreSQL on; Ctrl-C stops both)`,
);

let stopping = false;
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, async () => {
    if (stopping) return;
    stopping = true;
    await bridge.stop();
    await db.stop();
    process.exit(0);
  });
}

function fail(message: string): never {
  console.error(`pgwire-bridge: ${message}`);
  process.exit(1);
}
