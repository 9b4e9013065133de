import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { describeLoad, runLoad } from '../../bench/load.js';
import type { RunningBridge } from '../../dev/bridge.js';
import { postgres, startTlsBridge } from '../support/clients.js';

let bridge: RunningBridge;

beforeAll(async () => {
  bridge = await startTlsBridge();
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
