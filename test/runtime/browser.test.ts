import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { build, type BuildOptions, type Plugin } from 'esbuild';
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

/** A page's script bundled for the browser, as an application would bundle it. */
async function bundleForBrowser(entry: string, options: BuildOptions): Promise<string> {
  const result = await build({
    entryPoints: [entry],
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    write: false,
    ...options,
  });
  // write: false, so the files come back in memory.
  return result.outputFiles![0]!.text;
}

/**
 * postgres.js: the shim needs nothing; postgres.js's Workers build needs browser copies of three
 * Node modules, and never reaches `cloudflare:sockets` when it is given a socket.
 */
const bundlePostgresJsPage = (entry: string) =>
  bundleForBrowser(entry, {
    conditions: ['workerd'],
    alias: { 'node:events': 'events', 'node:buffer': 'buffer', 'node:stream': 'readable-stream' },
    external: ['cloudflare:sockets'],
  });

/**
 * pg needs more of Node than postgres.js does: events, readable-stream, and Buffer and process as
 * globals (injected) from npm; the two functions it takes from util; and empty modules for what it
 * only touches without a socket of its own (dns, fs, net, tls, path) or has a WebCrypto path
 * around (crypto).
 */
const nodeStubs: Plugin = {
  name: 'node-stubs',
  setup(build) {
    build.onResolve({ filter: /^(util|util\/types)$/ }, () => ({ path: 'util', namespace: 'node-stub' }));
    build.onResolve({ filter: /^(dns|fs|net|tls|path|crypto)$/ }, () => ({ path: 'empty', namespace: 'node-stub' }));
    build.onLoad({ filter: /^util$/, namespace: 'node-stub' }, () => ({
      contents:
        'export const deprecate = (fn) => fn; export const isDate = (v) => v instanceof Date; export default { deprecate };',
    }));
    build.onLoad({ filter: /^empty$/, namespace: 'node-stub' }, () => ({ contents: 'export default {};' }));
  },
};
const bundlePgPage = (entry: string) =>
  bundleForBrowser(entry, {
    alias: { stream: 'readable-stream' },
    inject: [`${appDir}node-globals.ts`],
    define: { global: 'globalThis' },
    plugins: [nodeStubs],
  });

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

/** Calls the page's global function `name` with `options`; resolves or rejects as it does. */
function callPage(page: Page, name: string, options: object): Promise<unknown> {
  return page.evaluate(
    ([fn, o]) => (globalThis as unknown as Record<string, (o: unknown) => Promise<unknown>>)[fn]!(o),
    [name, options] as const,
  );
}

/** What both pages return for `ROWS` rows. */
const fullResult = (notification: string) => ({
  answer: { answer: 42, user: postgres().user },
  rows: ROWS,
  last: { g: ROWS, h: createHash('md5').update(String(ROWS)).digest('hex') },
  sum: 55,
  error: '22012',
  notification,
});

describe('postgres.js and pg in Chromium, through the bundled shim', () => {
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
    const [postgresJsBundle, readmeBundle, pgBundle, html] = await Promise.all([
      bundlePostgresJsPage(`${appDir}page.ts`),
      bundlePostgresJsPage(readme.writeTo('browser.ts')),
      bundlePgPage(`${appDir}pg-page.ts`),
      readFile(`${appDir}index.html`, 'utf8'),
    ]);
    files['/'] = { type: 'text/html', body: html };
    files['/page.js'] = { type: 'text/javascript', body: postgresJsBundle };
    files['/readme'] = { type: 'text/html', body: html.replace('/page.js', '/readme.js') };
    files['/readme.js'] = { type: 'text/javascript', body: readmeBundle };
    files['/pg'] = { type: 'text/html', body: html.replace('/page.js', '/pg-page.js') };
    files['/pg-page.js'] = { type: 'text/javascript', body: pgBundle };
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
    const result = await callPage(page, 'runQueries', {
      url: bridge.url,
      user: db.user,
      password: db.password,
      rows: ROWS,
    });
    expect(result).toEqual({ ...fullResult('hello from the page'), userAgent: expect.stringContaining('Chrome/') });
  });

  it('holds no password: the bridge logs in as the role its token names', async () => {
    const token = await new SignJWT({ role: PAGE_ROLE })
      .setProtectedHeader({ alg: 'HS256' })
      .setAudience(AUDIENCE)
      .setExpirationTime('5m')
      .sign(new TextEncoder().encode(SECRET));
    const result = await callPage(page, 'runQueries', { url: edgeBridge.url, user: 'anyone', token, rows: 100 });
    expect(result).toMatchObject({
      answer: { answer: 42, user: PAGE_ROLE },
      rows: 100,
      notification: 'hello from the page',
    });
  });

  it('without a Buffer class, the driver fails with an error instead of hanging', async () => {
    const options = { url: bridge.url, user: db.user, password: db.password, rows: 1, buffer: false };
    // postgres.js reads chunks with Buffer methods; the socket fails with what the driver threw.
    await expect(callPage(page, 'runQueries', options)).rejects.toThrow(/readUInt32BE is not a function/);
  });

  it('runs pg too: SCRAM, parameters, a transaction, an error, a large result and LISTEN/NOTIFY', async () => {
    const pgPage = await browser.newPage();
    try {
      await pgPage.goto(`${origin}/pg`);
      await pgPage.waitForFunction(() => 'runPgQueries' in globalThis, null, { timeout: 10_000 });
      const result = await callPage(pgPage, 'runPgQueries', {
        url: bridge.url,
        user: db.user,
        password: db.password,
        rows: ROWS,
      });
      expect(result).toEqual(fullResult('hello from pg in the page'));
    } finally {
      await pgPage.close();
    }
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
