import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { describeLoad, runLoad } from '../../bench/load.js';
import { startBridge, type RunningBridge } from '../../dev/bridge.js';
import { postgres } from '../support/clients.js';

let bridge: RunningBridge;

beforeAll(async () => {
  const db = postgres();
  bridge = await startBridge({
    bindings: { PG_HOST: db.host, PG_PORT: String(db.port), PG_TLS: 'require' },
    trustedCaPem: db.caPem,
  });
});
afterAll(async () => {
  await bridge?.stop();
});

describe('load through one bridge', () => {
  it('serves 50 concurrent clients × 100 queries with nothing lost, corrupted or failed', async () => {
    const result = await runLoad(bridge.url, postgres(), 50, 100);
    console.log(describeLoad(result));
    expect(result).toMatchObject({ completed: 5000, lost: 0, corrupted: 0, errors: 0 });
  }, 120_000);
});
