import { describe, expect, it } from 'vitest';
import { describeLoad, runLoad } from '../../bench/load.js';
import { postgres, tlsBridgeForSuite } from '../support/clients.js';

const suite = tlsBridgeForSuite();

describe('load through one bridge', () => {
  it('serves 50 concurrent clients × 100 queries with nothing lost, corrupted or failed', async () => {
    const result = await runLoad(suite.bridge.url, postgres(), 50, 100);
    console.log(describeLoad(result));
    expect(result).toMatchObject({ completed: 5000, lost: 0, corrupted: 0, errors: 0 });
  }, 120_000);
});
