/**
 * `npm run soak`: bench/soak.ts against an embedded PostgreSQL and the bridge in workerd, all on
 * loopback. SOAK_HOSTILE attackers of each kind (default 20), SOAK_HONEST honest clients (default
 * 20), SOAK_SECONDS (default 60), SOAK_KINDS (a comma-separated subset), SOAK_PG_TLS (default
 * require). Exits non-zero when any honest query failed or came back wrong.
 */
import { describeSoak, runSoak } from '../bench/soak.js';
import { startBridge } from '../dev/bridge.js';
import { startPostgres } from '../dev/postgres.js';
import { BridgeLog, silentServer } from '../test/support/hostile.js';

const hostilePerKind = Number(process.env.SOAK_HOSTILE ?? 20);
const honest = Number(process.env.SOAK_HONEST ?? 20);
const seconds = Number(process.env.SOAK_SECONDS ?? 60);
/** A comma-separated subset of the attack kinds (bench/soak.ts, ATTACKS); all by default. */
const kinds = process.env.SOAK_KINDS?.split(',').map((kind) => kind.trim());

const db = await startPostgres();
const silent = await silentServer();
const log = new BridgeLog();
// One bridge for every kind: flow control offered (so clients without it are served, and bounded
// by the queue limit), two targets (the database, and a server that never answers), and time
// limits short enough that held sessions cycle within the run.
const bridge = await startBridge({
  bindings: {
    PG_TARGETS: `${db.host}:${db.port},127.0.0.1:${silent.port}`,
    PG_TLS: process.env.SOAK_PG_TLS ?? 'require',
    FLOW_CONTROL: 'offer',
    CONNECT_TIMEOUT_MS: '2000',
    STARTUP_TIMEOUT_MS: '2000',
    LOGIN_TIMEOUT_MS: '5000',
  },
  trustedCaPem: db.caPem,
  log: log.write,
});
try {
  if (bridge.pid === null) throw new Error('the workerd process was not found: soak needs Linux /proc');
  const targets = {
    database: `${bridge.url}?host=${db.host}&port=${db.port}`,
    silent: `${bridge.url}?host=127.0.0.1&port=${silent.port}`,
  };
  const login = { user: db.user, password: db.password, database: db.database };
  const result = await runSoak(targets, login, {
    hostilePerKind,
    honest,
    seconds,
    pid: bridge.pid,
    log,
    ...(kinds && { kinds }),
  });
  console.log(describeSoak(result));
  process.exitCode = result.honest.failed + result.honest.corrupted === 0 ? 0 : 1;
} finally {
  await bridge.stop();
  await silent.stop();
  await db.stop();
}
