import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { freePort } from '../../dev/ports.js';
import { bridgeClient, eventually, postgres } from '../support/clients.js';

const root = fileURLToPath(new URL('../..', import.meta.url));

describe('npm run dev', () => {
  it('runs wrangler dev against a PostgreSQL on this machine over plain TCP, and prints the ws:// URL', async () => {
    const port = await freePort();
    const child = spawn('npm', ['run', 'dev', '--', '--port', String(port), '--var', `PG_PORT:${postgres().port}`], {
      cwd: root,
      detached: true,
    });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk));
    try {
      await eventually(
        async () => output,
        (text) => text.includes('pgwire-bridge ready:'),
        60_000,
      );
      const url = /pgwire-bridge ready: (\S+)/.exec(output)![1]!;
      expect(url).toBe(`ws://127.0.0.1:${port}/v1`);
      const client = bridgeClient(url);
      await client.connect();
      // PG_TLS=off in [env.dev]: plain TCP, as an ordinary local PostgreSQL expects.
      const { rows } = await client.query('SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()');
      expect(rows).toEqual([{ ssl: false }]);
      await client.end();
    } finally {
      process.kill(-child.pid!, 'SIGINT');
    }
  }, 90_000);
});
