import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { delimiter, join, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { build } from 'esbuild';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningBridge } from '../../dev/bridge.js';
import { postgres, startTlsBridge } from '../support/clients.js';

// Unmodified pg, bundled with `net` aliased to the shim's net module (as code that cannot pass a
// socket would do), run as its own Node process: once with `ws`, once with Node's global WebSocket.
const root = fileURLToPath(new URL('../..', import.meta.url));
let bridge: RunningBridge;
let dir: string;

beforeAll(async () => {
  bridge = await startTlsBridge();
  // Inside the project, so a bundle's external imports (ws) resolve from its node_modules.
  await mkdir(join(root, 'node_modules', '.cache'), { recursive: true });
  dir = await mkdtemp(join(root, 'node_modules', '.cache', 'pgwire-bridge-runtime-'));
});
afterAll(async () => {
  await bridge?.stop();
  await rm(dir, { recursive: true, force: true });
});

async function bundle(name: string, webSocket: 'ws' | 'global'): Promise<string> {
  const entry = join(dir, `${name}.mjs`);
  await writeFile(
    entry,
    `import pg from 'pg';
${webSocket === 'ws' ? "import WebSocket from 'ws';" : ''}
import { configure } from 'pgwire-bridge/net';
configure({ url: process.env.BRIDGE_URL${webSocket === 'ws' ? ', WebSocket' : ''} });
const client = new pg.Client({ user: process.env.PGUSER, password: process.env.PGPASSWORD, database: 'postgres' });
await client.connect();
const { rows } = await client.query("SELECT $1::text || ' via ' || current_setting('server_version_num') AS answer", ['pg']);
console.log(JSON.stringify({ rows, hasGlobalWebSocket: typeof globalThis.WebSocket === 'function', node: process.versions.node }));
await client.end();
`,
  );
  const outfile = join(dir, `${name}.bundle.mjs`);
  await build({
    entryPoints: [entry],
    bundle: true,
    platform: 'node',
    format: 'esm',
    outfile,
    // The built module users import (npm run build), by path: the entry sits outside the package.
    alias: { net: `${root}dist/client/net.js`, 'pgwire-bridge/net': `${root}dist/client/net.js` },
    // ws needs the real `net`: it stays outside the bundle, where the alias does not reach.
    external: ['pg-native', 'ws'],
    banner: { js: "import { createRequire } from 'node:module'; const require = createRequire(import.meta.url);" },
  });
  return outfile;
}

/**
 * The machine's own Node: the first on PATH outside node_modules (npm scripts put the `node`
 * devDependency's Node 22 first). On a machine whose Node is 20, the client is checked there.
 */
function machineNode(): string {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (dir.split(sep).includes('node_modules')) continue;
    const candidate = join(dir, 'node');
    if (existsSync(candidate)) return candidate;
  }
  return process.execPath;
}

async function run(script: string, nodeFlags: string[], node = process.execPath) {
  const db = postgres();
  const { stdout } = await promisify(execFile)(node, [...nodeFlags, script], {
    cwd: root,
    env: { ...process.env, BRIDGE_URL: bridge.url, PGUSER: db.user, PGPASSWORD: db.password },
  });
  return JSON.parse(stdout.trim().split('\n').at(-1)!);
}

describe('Node runtimes, pg picking the shim up as `net`', () => {
  it('runs with the ws package', async () => {
    const result = await run(await bundle('with-ws', 'ws'), []);
    expect(result.rows[0].answer).toMatch(/^pg via 18\d{4}$/);
  });

  it("runs with the ws package on the machine's own Node, whatever npm put first on PATH", async () => {
    const node = machineNode();
    const result = await run(await bundle('machine-node', 'ws'), [], node);
    console.log(`the machine's Node: ${node} ${result.node}`);
    expect(result.rows[0].answer).toMatch(/^pg via 18\d{4}$/);
  });

  it("runs with Node's global WebSocket", async () => {
    const result = await run(await bundle('global', 'global'), ['--experimental-websocket']);
    expect(result.hasGlobalWebSocket).toBe(true);
    expect(result.rows[0].answer).toMatch(/^pg via 18\d{4}$/);
  });
});
