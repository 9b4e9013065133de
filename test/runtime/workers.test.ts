import { createHash } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Readable } from 'node:stream';
import { SignJWT } from 'jose';
import type { Miniflare } from 'miniflare';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  bridgeWorkerOptions,
  compatibilityDate,
  startBridge,
  TidyMiniflare,
  type RunningBridge,
} from '../../dev/bridge.js';
import { postgres } from '../support/clients.js';
import { readmeExample } from '../support/readme.js';
import { bundleWithWrangler } from '../support/wrangler.js';

const appDir = fileURLToPath(new URL('./worker-app/', import.meta.url));
const SECRET = 'workers-test-secret-of-at-least-32-bytes';
const AUDIENCE = 'pgwire-bridge-workers-test';

/** An application Worker (a directory with its wrangler.toml), bundled as its author would deploy it. */
const bundleApp = async (dir = appDir) => (await bundleWithWrangler(dir)).script;

describe('a Worker that imports the shim and a driver, in workerd', () => {
  let app: Miniflare;
  let networkBridge: RunningBridge;
  const db = postgres();
  const toPostgres = { PG_HOST: db.host, PG_PORT: String(db.port), PG_TLS: 'require' } as const;

  beforeAll(async () => {
    const [script, token] = await Promise.all([
      bundleApp(),
      new SignJWT({})
        .setProtectedHeader({ alg: 'HS256' })
        .setAudience(AUDIENCE)
        .setExpirationTime('10m')
        .sign(new TextEncoder().encode(SECRET)),
    ]);
    // One bridge reached over the network and checking tokens, as a deployed one would be;
    // another beside the app as a service binding.
    networkBridge = await startBridge({
      bindings: { ...toPostgres, JWT_SECRET: SECRET, JWT_AUDIENCE: AUDIENCE },
      trustedCaPem: db.caPem,
    });
    app = new TidyMiniflare({
      workers: [
        {
          name: 'app',
          modules: [{ type: 'ESModule', path: 'index.js', contents: script }],
          compatibilityDate,
          bindings: { BRIDGE_URL: networkBridge.url, PG_USER: db.user, PG_PASSWORD: db.password, TOKEN: token },
          serviceBindings: { BRIDGE: 'bridge' },
        },
        { name: 'bridge', ...(await bridgeWorkerOptions({ bindings: toPostgres, trustedCaPem: db.caPem })) },
      ],
      // The bridge's session log lines are not this test's subject.
      handleRuntimeStdio: (stdout: Readable, stderr: Readable) => {
        stdout.resume();
        stderr.resume();
      },
    });
    await app.ready;
  }, 60_000);

  afterAll(async () => {
    await app?.dispose();
    await networkBridge?.stop();
  });

  async function get(path: string): Promise<{ status: number; body: unknown }> {
    const response = await app.dispatchFetch(new URL(path, 'http://app.test'));
    return { status: response.status, body: await response.json() };
  }

  const expected = () => ({
    answer: { answer: 42, user: db.user },
    rows: 50_000,
    last: { g: 50_000, h: createHash('md5').update('50000').digest('hex') },
    error: '42P01',
  });

  const ways = {
    network: 'fetch over the network, with a token',
    binding: 'fetch through a service binding',
    constructor: 'the global WebSocket, with a token',
  };
  for (const [via, way] of Object.entries(ways)) {
    it(`pg runs queries, a 50,000-row result and an error (${way})`, async () => {
      expect(await get(`/pg?via=${via}`)).toEqual({ status: 200, body: expected() });
    });
    it(`postgres.js does too, and cancels a pg_sleep with its own CancelRequest (${way})`, async () => {
      expect(await get(`/postgres?via=${via}`)).toEqual({ status: 200, body: { ...expected(), cancelled: '57014' } });
    });
  }

  it('a refused upgrade reaches the driver as an Error with a code, the HTTP status and the reason', async () => {
    const { status, body } = await get('/pg?via=network-without-token');
    expect(status).toBe(500);
    expect(body).toEqual({
      error: {
        code: 'ECONNREFUSED',
        message: `could not open a WebSocket to ${networkBridge.url}: the bridge answered HTTP 401: a token is required`,
      },
    });
  });

  it('an unreachable bridge reaches the driver as ECONNREFUSED', async () => {
    const { status, body } = await get('/postgres?via=nowhere');
    expect(status).toBe(500);
    expect(body).toMatchObject({ error: { code: 'ECONNREFUSED' } });
    expect((body as { error: { message: string } }).error.message).toMatch(
      /^could not open a WebSocket to ws:\/\/127\.0\.0\.1:9\/v1: ./,
    );
  });

  it("runs the README's Worker example as written", async () => {
    const bridge = await startBridge({ bindings: toPostgres, trustedCaPem: db.caPem });
    const example = readmeExample('worker', bridge.url);
    const dir = dirname(example.writeTo('worker/index.ts'));
    await writeFile(
      join(dir, 'wrangler.toml'),
      `name = "readme-example"\nmain = "index.ts"\ncompatibility_date = "${compatibilityDate}"\n`,
    );
    const readmeApp = new TidyMiniflare({
      modules: [{ type: 'ESModule', path: 'index.js', contents: await bundleApp(dir) }],
      compatibilityDate,
      bindings: { BRIDGE_URL: bridge.url, PG_PASSWORD: db.password },
    });
    try {
      const response = await readmeApp.dispatchFetch('http://app.test/');
      expect([await response.text()]).toEqual(example.expected);
    } finally {
      await readmeApp.dispose();
      await bridge.stop();
    }
  });
});
