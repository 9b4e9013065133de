import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { chmodSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import WebSocket from 'ws';
import { describe, expect, it } from 'vitest';
import { Socket } from 'pgwire-bridge/client';
import { freePort, portIsFree } from '../../dev/postgres.js';
import { eventually } from '../support/clients.js';

const root = fileURLToPath(new URL('../..', import.meta.url));

/** `npm start` in its own process group, as a terminal runs it (Ctrl-C reaches the whole group). */
function npmStart(env: Record<string, string>): {
  child: ChildProcess;
  output: () => string;
  /** The exit code, or the signal that ended the process. */
  exited: Promise<number | NodeJS.Signals>;
} {
  const child = spawn('npm', ['start'], { cwd: root, env: { ...process.env, ...env }, detached: true });
  let output = '';
  child.stdout!.on('data', (chunk: Buffer) => (output += chunk));
  child.stderr!.on('data', (chunk: Buffer) => (output += chunk));
  const exited = new Promise<number | NodeJS.Signals>((resolve) =>
    child.once('exit', (code, signal) => resolve(code ?? signal!)),
  );
  return { child, output: () => output, exited };
}

describe('npm start', () => {
  it('runs PostgreSQL and the bridge, prints one ready line, serves pg, and stops on Ctrl-C', async () => {
    const [port, pgPort] = [await freePort(), await freePort()];
    // Its own temporary directory, to see that Ctrl-C leaves nothing in it.
    // (Readable by others, as /tmp is: as root, PostgreSQL's initdb runs as another user.)
    const tmp = mkdtempSync(join(tmpdir(), 'pgwire-bridge-start-'));
    chmodSync(tmp, 0o755);
    const start = npmStart({ PORT: String(port), PG_PORT: String(pgPort), TMPDIR: tmp });
    try {
      await eventually(
        async () => start.output(),
        (output) => output.includes('pgwire-bridge ready:'),
        60_000,
      );
      const ready = /pgwire-bridge ready: (\S+) user=(\S+) password=(\S+) database=(\S+) /.exec(start.output());
      expect(ready, start.output()).not.toBeNull();
      const [, url, user, password, database] = ready!;
      expect(url).toBe(`ws://127.0.0.1:${port}/v1`);

      const client = new pg.Client({
        user,
        password,
        database,
        stream: () => new Socket({ url: url!, WebSocket: WebSocket as never }) as never,
      });
      await client.connect();
      expect((await client.query('SELECT current_setting($1) AS port', ['port'])).rows).toEqual([
        { port: String(pgPort) },
      ]);
      await client.end();

      process.kill(-start.child.pid!, 'SIGINT');
      // npm itself ends by the signal, as in a terminal; the script under it goes on to stop
      // both servers, which frees their ports.
      expect([0, 'SIGINT']).toContain(await start.exited);
      const free = await eventually(
        async () => (await portIsFree(port)) && (await portIsFree(pgPort)),
        (isFree) => isFree,
        10_000,
      );
      expect(free).toBe(true);
      const left = await eventually(
        async () => readdirSync(tmp).filter((name) => name.startsWith('pgwire-bridge-pg-')),
        (names) => names.length === 0,
        10_000,
      );
      expect(left).toEqual([]);
      rmSync(tmp, { recursive: true, force: true });
      expect(start.output()).not.toMatch(/error/i);
    } finally {
      // Whatever of the group is left (nothing, when the test passed).
      try {
        process.kill(-start.child.pid!, 'SIGKILL');
      } catch {
        // The group is gone.
      }
    }
  }, 90_000);

  it('says which port is taken and exits 1, starting nothing', async () => {
    const taken = createServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
    const takenPort = (taken.address() as { port: number }).port;
    try {
      for (const [setting, other] of [
        ['PORT', 'PG_PORT'],
        ['PG_PORT', 'PORT'],
      ] as const) {
        const start = npmStart({ [setting]: String(takenPort), [other]: String(await freePort()) });
        expect(await start.exited).toBe(1);
        expect(start.output()).toContain(
          `pgwire-bridge: port ${takenPort} is already in use (another one running?); set ${setting}`,
        );
        expect(start.output()).not.toContain('pgwire-bridge ready');
      }
    } finally {
      taken.close();
    }
  }, 60_000);
});
