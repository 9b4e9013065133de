import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { SignJWT } from 'jose';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startBridge, type RunningBridge } from '../../dev/bridge.js';
import { directClient, postgres } from '../support/clients.js';
import { readmeExample, type ReadmeExample } from '../support/readme.js';

const appDir = fileURLToPath(new URL('./browser-app/', import.meta.url));
/** Debian's Chromium (`apt-get install chromium`); CHROMIUM_PATH points elsewhere. */
const chromiumPath = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const ROWS = 20_000;
const SECRET = 'browser-test-secret-of-at-least-32-bytes';
const AUDIENCE = 'pgwire-bridge-browser-test';
const PAGE_ROLE = 'page_reader';
const PAGE_ROLE_PASSWORD = 'page-reader-password';

/**
 * The page bundled for the browser as an application would bundle it. The shim needs nothing;
 * postgres.js's Workers build needs browser copies of three Node modules, and never reaches
 * `cloudflare:sockets` when it is given a socket.
 */
async function bundlePage(entry: string): Promise<string> {
  const result = await build({
    entryPoints: [entry],
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    conditions: ['workerd'],
    alias: { 'node:events': 'events', 'node:buffer': 'buffer', 'node:stream': 'readable-stream' },
    external: ['cloudflare:sockets'],
    write: false,
  });
  return result.outputFiles[0]!.text;
}

/** Serves the page and its bundle on 127.0.0.1, as a development server would. */
async function servePage(files: Record<string, { type: string; body: string }>): Promise<Server> {
  const server = createServer((request, response) => {
    const file = files[request.url ?? ''];
    if (!file) return void response.writeHead(404).end();
    response.writeHead(200, { 'content-type': file.type }).end(file.body);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return server;
}

describe('postgres.js in Chromium, through the bundled shim', () => {
  const db = postgres();
  let server: Server;
  let bridge: RunningBridge;
  /** A bridge that holds the database password and logs in for pages that show a token. */
  let edgeBridge: RunningBridge;
  let browser: Browser;
  let page: Page;
  let origin: string;
  let readme: ReadmeExample;

  beforeAll(async () => {
    if (!existsSync(chromiumPath)) {
      throw new Error(`no Chromium at ${chromiumPath}: apt-get install chromium, or set CHROMIUM_PATH`);
    }
    const files: Record<string, { type: string; body: string }> = {};
    server = await servePage(files);
    origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    bridge = await startBridge({
      bindings: { PG_HOST: db.host, PG_PORT: String(db.port), PG_TLS: 'require', ALLOWED_ORIGINS: origin },
      trustedCaPem: db.caPem,
    });
    readme = readmeExample('browser', bridge.url);
    const [bundle, readmeBundle, html] = await Promise.all([
      bundlePage(`${appDir}page.ts`),
      bundlePage(readme.writeTo('browser.ts')),
      readFile(`${appDir}index.html`, 'utf8'),
    ]);
    files['/'] = { type: 'text/html', body: html };
    files['/page.js'] = { type: 'text/javascript', body: bundle };
    files['/readme'] = { type: 'text/html', body: html.replace('/page.js', '/readme.js') };
    files['/readme.js'] = { type: 'text/javascript', body: readmeBundle };
    edgeBridge = await startBridge({
      bindings: {
        PG_HOST: db.host,
        PG_PORT: String(db.port),
        PG_TLS: 'require',
        ALLOWED_ORIGINS: origin,
        JWT_SECRET: SECRET,
        JWT_AUDIENCE: AUDIENCE,
        JWT_ROLE_CLAIM: 'role',
        PG_CREDENTIALS: JSON.stringify({ [PAGE_ROLE]: PAGE_ROLE_PASSWORD }),
      },
      trustedCaPem: db.caPem,
    });
    const admin = directClient();
    await admin.connect();
    await admin.query(`DROP ROLE IF EXISTS ${PAGE_ROLE}`);
    await admin.query(`CREATE ROLE ${PAGE_ROLE} LOGIN PASSWORD '${PAGE_ROLE_PASSWORD}'`);
    await admin.end();
    browser = await chromium.launch({
      executablePath: chromiumPath,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
    });
    page = await browser.newPage();
    const pageErrors: string[] = [];
    page.on('pageerror', (error) => pageErrors.push(error.message));
    await page.goto(`${origin}/`);
    await page
      .waitForFunction(() => 'runQueries' in globalThis, null, { timeout: 10_000 })
      .catch(() => {
        throw new Error(`the page did not load: ${pageErrors.join('; ') || 'no error reported'}`);
      });
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
    await bridge?.stop();
    await edgeBridge?.stop();
    server?.close();
  });

  it('logs in with SCRAM and runs queries, a transaction, an error, a large result and LISTEN/NOTIFY', async () => {
    const options = { url: bridge.url, user: db.user, password: db.password, rows: ROWS };
    const result = await page.evaluate(
      (o) => (globalThis as unknown as { runQueries(o: unknown): Promise<unknown> }).runQueries(o),
      options,
    );
    expect(result).toEqual({
      answer: { answer: 42, user: db.user },
      rows: ROWS,
      last: { g: ROWS, h: createHash('md5').update(String(ROWS)).digest('hex') },
      sum: 55,
      error: '22012',
      notification: 'hello from the page',
      userAgent: expect.stringContaining('Chrome/'),
    });
  });

  it('holds no password: the bridge logs in as the role its token names', async () => {
    const token = await new SignJWT({ role: PAGE_ROLE })
      .setProtectedHeader({ alg: 'HS256' })
      .setAudience(AUDIENCE)
      .setExpirationTime('5m')
      .sign(new TextEncoder().encode(SECRET));
    const options = { url: edgeBridge.url, user: 'anyone', token, rows: 100 };
    const result = await page.evaluate(
      (o) => (globalThis as unknown as { runQueries(o: unknown): Promise<unknown> }).runQueries(o),
      options,
    );
    expect(result).toMatchObject({
      answer: { answer: 42, user: PAGE_ROLE },
      rows: 100,
      notification: 'hello from the page',
    });
  });

  it('without a Buffer class, the driver fails with an error instead of hanging', async () => {
    const options = { url: bridge.url, user: db.user, password: db.password, rows: 1, buffer: false };
    const outcome = await page.evaluate(
      (o) =>
        (globalThis as unknown as { runQueries(o: unknown): Promise<unknown> }).runQueries(o).then(
          () => 'resolved',
          (error: Error) => `rejected: ${error.message}`,
        ),
      options,
    );
    // postgres.js reads chunks with Buffer methods; the socket fails with what the driver threw.
    expect(outcome).toMatch(/^rejected: .*readUInt32BE is not a function/);
  });

  it("runs the README's browser example as written", async () => {
    const readmePage = await browser.newPage();
    try {
      await readmePage.goto(`${origin}/readme`);
      await readmePage.waitForFunction(() => document.body?.textContent !== '', null, { timeout: 10_000 });
      expect([await readmePage.evaluate(() => document.body.textContent)]).toEqual(readme.expected);
    } finally {
      await readmePage.close();
    }
  });
});
