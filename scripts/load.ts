/** `npm run load`: bench/load.ts against an embedded PostgreSQL and the bridge in workerd. */
import { describeLoad, runLoad } from '../bench/load.js';
import { startBridge } from '../dev/bridge.js';
import { startPostgres } from '../dev/postgres.js';

const clients = Number(process.env.LOAD_CLIENTS ?? 200);
const queries = Number(process.env.LOAD_QUERIES ?? 1000);

const db = await startPostgres();
const bridge = await startBridge({
  bindings: {
    PG_HOST: db.host,
    PG_PORT: String(db.port),
    PG_TLS: 'require',
    // Every client in one isolate, past the 128 sessions a deployed isolate takes by default.
    MAX_SESSIONS: String(Math.max(clients, 128)),
  },
  trustedCaPem: db.caPem,
});
try {
  const result = await runLoad(bridge.url, db, clients, queries);
  console.log(describeLoad(result));
  process.exitCode = result.lost + result.corrupted + result.errors === 0 ? 0 : 1;
} finally {
  await bridge.stop();
  await db.stop();
}
