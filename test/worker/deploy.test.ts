import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { startBridge } from '../../dev/bridge.js';
import { bridgeClient, postgres } from '../support/clients.js';

describe('wrangler.toml', () => {
  it('builds with `wrangler deploy --dry-run`, and that very bundle bridges pg to PostgreSQL', async () => {
    const outdir = await mkdtemp(join(tmpdir(), 'pgwire-bridge-deploy-'));
    try {
      const { stdout } = await promisify(execFile)('npx', ['wrangler', 'deploy', '--dry-run', '--outdir', outdir], {
        env: { ...process.env, WRANGLER_SEND_METRICS: 'false' },
      });
      expect(stdout).toContain('env.PG_HOST');
      const script = await readFile(join(outdir, 'index.js'), 'utf8');

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
    } finally {
      await rm(outdir, { recursive: true, force: true });
    }
  });
});
