import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { startBridge } from '../../dev/bridge.js';
import { bridgeClient, postgres } from '../support/clients.js';
import { bundleWithWrangler } from '../support/wrangler.js';

const root = fileURLToPath(new URL('../..', import.meta.url));

describe('wrangler.toml', () => {
  it('builds with `wrangler deploy --dry-run`, and that very bundle bridges pg to PostgreSQL', async () => {
    const { script, stdout } = await bundleWithWrangler(root);
    expect(stdout).toContain('env.PG_HOST');
    expect(stdout).toContain('env.RATE_LIMITER');

    const db = postgres();
    const bridge = await startBridge({
      script,
      bindings: { PG_HOST: db.host, PG_PORT: String(db.port), PG_TLS: 'require' },
      trustedCaPem: db.caPem,
    });
    try {
      const client = bridgeClient(bridge.url);
      await client.connect();
      expect((await client.query('SELECT 40 + 2 AS answer')).rows).toEqual([{ answer: 42 }]);
      await client.end();
    } finally {
      await bridge.stop();
    }
  });
});
