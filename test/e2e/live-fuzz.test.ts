import fc from 'fast-check';
import { afterAll, beforeAll, describe, it } from 'vitest';
import { startBridge, type RunningBridge } from '../../dev/bridge.js';
import { postgres } from '../support/clients.js';
import { liveProperty } from '../support/live-fuzz.js';
import { startRecordingProxy } from '../support/recording-proxy.js';

let bridge: RunningBridge;
let proxy: Awaited<ReturnType<typeof startRecordingProxy>>;

beforeAll(async () => {
  const db = postgres();
  proxy = await startRecordingProxy(db);
  // Plain TCP toward the proxy, so it can read what PostgreSQL receives.
  bridge = await startBridge({ bindings: { PG_HOST: '127.0.0.1', PG_PORT: String(proxy.port), PG_TLS: 'off' } });
});
afterAll(async () => {
  await bridge?.stop();
  await proxy?.stop();
});

describe('a live bridge under fuzzing', () => {
  it('forwards to PostgreSQL nothing from a refused frame on, and refuses with a FATAL ErrorResponse', async () => {
    const db = postgres();
    const login = { user: db.user, password: db.password, database: db.database };
    await fc.assert(liveProperty(bridge.url, proxy, login), {
      numRuns: Number(process.env.FUZZ_LIVE_RUNS ?? 40),
      seed: Number(process.env.FUZZ_SEED ?? 20261121),
    });
  }, 120_000);
});
