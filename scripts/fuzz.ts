/**
 * `npm run fuzz`: the fuzz properties at scale. The protocol core against the reference model
 * (FUZZ_RUNS per property, default 100,000), then a live bridge in workerd in front of real
 * PostgreSQL (FUZZ_LIVE_RUNS, default 300). FUZZ_SEED replays a run; without it a seed is drawn
 * and printed.
 */
import fc from 'fast-check';
import { startBridge } from '../dev/bridge.js';
import { startPostgres } from '../dev/postgres.js';
import { mutatedSessions, randomBytes, randomFrames } from '../test/support/fuzz-properties.js';
import { liveProperty } from '../test/support/live-fuzz.js';
import { startRecordingProxy } from '../test/support/recording-proxy.js';

const runs = Number(process.env.FUZZ_RUNS ?? 100_000);
const liveRuns = Number(process.env.FUZZ_LIVE_RUNS ?? 300);
const seed = Number(process.env.FUZZ_SEED ?? Date.now() % 2 ** 31);
let total = 0;
let failures = 0;

function report<T>(name: string, details: fc.RunDetails<T>): void {
  total += details.numRuns;
  if (details.failed) failures += 1;
  console.log(`${name}: runs=${details.numRuns} failures=${details.failed ? 1 : 0} seed=${details.seed}`);
  if (details.failed)
    console.log(`  counterexample: ${fc.stringify(details.counterexample)}\n  ${details.errorInstance}`);
}

report('core: mutated valid sessions', fc.check(mutatedSessions, { numRuns: runs, seed }));
report('core: random bytes', fc.check(randomBytes, { numRuns: runs, seed }));
report('core: random bytes after startup', fc.check(randomFrames, { numRuns: runs, seed }));

const db = await startPostgres();
const proxy = await startRecordingProxy(db);
const bridge = await startBridge({ bindings: { PG_HOST: '127.0.0.1', PG_PORT: String(proxy.port), PG_TLS: 'off' } });
try {
  const login = { user: db.user, password: db.password, database: db.database };
  report('live bridge', await fc.check(liveProperty(bridge.url, proxy, login), { numRuns: liveRuns, seed }));
} finally {
  await bridge.stop();
  await proxy.stop();
  await db.stop();
}

console.log(`fuzz: runs=${total} failures=${failures} seed=${seed}`);
process.exit(failures === 0 ? 0 : 1);
