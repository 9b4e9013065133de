import { generateKeyPairSync } from 'node:crypto';
import { SignJWT, type JWTPayload } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BridgeOptions, RunningBridge } from '../../dev/bridge.js';
import type { Env } from '../../worker/config.js';
import { bridgeClient, postgres } from '../support/clients.js';
import { startLoggedBridge, upgrade, type BridgeLog, type LogEvent } from '../support/logged-bridge.js';
import { startRecordingProxy } from '../support/recording-proxy.js';

// Refusals at the upgrade are HTTP statuses given before any TCP connection exists: every bridge
// here reaches PostgreSQL through the recording proxy, so a test can show none was opened.
const SECRET = 'a-shared-secret-of-at-least-32-characters';
const AUDIENCE = 'pgwire-bridge-refusals';
const REFUSED = 'pgwire-bridge.refused';

let proxy: Awaited<ReturnType<typeof startRecordingProxy>>;
const bridges: RunningBridge[] = [];

beforeAll(async () => {
  proxy = await startRecordingProxy(postgres());
});
afterAll(async () => {
  await Promise.all(bridges.map((b) => b.stop()));
  await proxy?.stop();
});

async function bridge(
  bindings: Env,
  options: Omit<BridgeOptions, 'bindings'> = {},
): Promise<{ bridge: RunningBridge; log: BridgeLog }> {
  const started = await startLoggedBridge({
    bindings: { PG_HOST: '127.0.0.1', PG_PORT: String(proxy.port), PG_TLS: 'off', ...bindings },
    ...options,
  });
  bridges.push(started.bridge);
  return started;
}

function token(claims: JWTPayload, secret = SECRET): Promise<string> {
  return new SignJWT(claims)
    .setProtectedHeader({ alg: 'HS256' })
    .setAudience(AUDIENCE)
    .setExpirationTime('5m')
    .sign(new TextEncoder().encode(secret));
}

/** The client socket's options for a client at `address`, as Cloudflare's edge would tell the Worker. */
const from = (address: string) => ({
  webSocketOptions: { perMessageDeflate: false, headers: { 'CF-Connecting-IP': address } },
});

async function served(url: string, socket: object = {}): Promise<unknown> {
  const client = bridgeClient(url, {}, socket);
  await client.connect();
  const { rows } = await client.query('SELECT 1 AS ok');
  await client.end();
  return rows;
}

/** Upgrades `times` times from `address`; all of them must be let through. */
async function useUp(url: string, address: string, times: number): Promise<void> {
  for (let i = 0; i < times; i++) {
    expect((await upgrade(url, { headers: { 'CF-Connecting-IP': address } })).status).toBe(101);
  }
}

describe('rate limit', () => {
  const LIMIT = 5;

  it('refuses the upgrade past the limit from one address with 429 and Retry-After, before any TCP; others are served', async () => {
    const { bridge: b, log } = await bridge({}, { rateLimit: { limit: LIMIT, period: 60 } });
    await useUp(b.url, '198.51.100.7', LIMIT);
    const before = proxy.connections.length;
    const refused = await upgrade(b.url, { headers: { 'CF-Connecting-IP': '198.51.100.7' } });
    expect(refused.status).toBe(429);
    expect(Number(refused.headers['retry-after'])).toBeGreaterThan(0);
    await expect(served(b.url, from('198.51.100.7'))).rejects.toMatchObject({ code: 'ECONNREFUSED' });
    expect(proxy.connections.length).toBe(before);
    expect(await log.find(REFUSED, (line) => line.code === 'RATE_LIMITED')).toMatchObject({
      status: 429,
      client: '198.51.100.7',
    });
    expect(await served(b.url, from('198.51.100.8'))).toEqual([{ ok: 1 }]);
  });

  it('counts an IPv6 client by its /64: another address in it is refused, one in the next /64 is served', async () => {
    const { bridge: b } = await bridge({}, { rateLimit: { limit: LIMIT, period: 60 } });
    await useUp(b.url, '2001:db8:7:1::1', LIMIT);
    const before = proxy.connections.length;
    const refused = await upgrade(b.url, { headers: { 'CF-Connecting-IP': '2001:db8:7:1:ffff:ffff:ffff:fffe' } });
    expect(refused.status).toBe(429);
    expect(proxy.connections.length).toBe(before);
    expect(await served(b.url, from('2001:db8:7:2::1'))).toEqual([{ ok: 1 }]);
  });

  it('with tokens, counts per token subject: two subjects from one address are limited separately', async () => {
    const { bridge: b, log } = await bridge(
      { JWT_SECRET: SECRET, JWT_AUDIENCE: AUDIENCE },
      { rateLimit: { limit: LIMIT, period: 60 } },
    );
    const [alice, bob] = await Promise.all([token({ sub: 'alice' }), token({ sub: 'bob' })]);
    await useUp(`${b.url}?token=${alice}`, '203.0.113.5', LIMIT);
    expect((await upgrade(`${b.url}?token=${alice}`, { headers: { 'CF-Connecting-IP': '203.0.113.5' } })).status).toBe(
      429,
    );
    // The subject is what is counted: alice from another address is limited all the same.
    expect((await upgrade(`${b.url}?token=${alice}`, { headers: { 'CF-Connecting-IP': '203.0.113.6' } })).status).toBe(
      429,
    );
    expect(await served(b.url, { token: bob, ...from('203.0.113.5') })).toEqual([{ ok: 1 }]);
    expect(log.text).not.toContain(alice);
  });
});

describe('refusal logs', () => {
  it('log each refusal as one JSON line with its code and status, and never the token', async () => {
    const { bridge: b, log } = await bridge({ JWT_SECRET: SECRET, JWT_AUDIENCE: AUDIENCE });
    const valid = await token({ sub: 'refusal-logs' });
    const forged = await token({ sub: 'forged' }, 'another-secret-of-at-least-32-characters');
    const headers = { 'CF-Connecting-IP': '192.0.2.44' };
    const before = proxy.connections.length;
    const cases: Array<[string, Parameters<typeof upgrade>[1] & { url: string }, string, number]> = [
      [
        'a browser origin',
        { url: `${b.url}?token=${valid}`, origin: 'https://app.example.com' },
        'ORIGIN_NOT_ALLOWED',
        403,
      ],
      ['no token', { url: b.url }, 'TOKEN_REQUIRED', 401],
      ['a forged token', { url: `${b.url}?token=${forged}` }, 'TOKEN_INVALID', 401],
      ['no flow control', { url: `${b.url}?token=${valid}`, protocols: [] }, 'FLOW_CONTROL_REQUIRED', 400],
    ];
    for (const [what, { url, ...options }, code, status] of cases) {
      const logged = log.events(REFUSED).length;
      expect((await upgrade(url, { ...options, headers })).status, what).toBe(status);
      const line = await log.find(REFUSED, () => true, logged);
      expect(line, what).toEqual({
        event: REFUSED,
        code,
        status,
        path: '/v1',
        origin: options.origin ?? null,
        client: '192.0.2.44',
      });
    }
    expect(log.events(REFUSED)).toHaveLength(cases.length);
    expect(proxy.connections.length).toBe(before);
    for (const secret of [valid, forged, SECRET]) expect(log.text).not.toContain(secret);
  });

  /** The one refusal of an upgrade to a bridge with these bindings, and its log. */
  async function misconfigured(bindings: Env): Promise<{ line: LogEvent; log: BridgeLog }> {
    const { bridge: b, log } = await bridge(bindings);
    const before = proxy.connections.length;
    expect((await upgrade(b.url)).status).toBe(500);
    expect(proxy.connections.length).toBe(before);
    return { line: await log.find(REFUSED, () => true), log };
  }

  it('log a misconfigured bridge as 500 MISCONFIGURED, with the reason for the operator', async () => {
    const { line, log } = await misconfigured({ JWT_SECRET: 'too-short-a-secret', JWT_AUDIENCE: AUDIENCE });
    expect(line).toMatchObject({ code: 'MISCONFIGURED', status: 500 });
    expect(log.text).toContain('pgwire-bridge: invalid configuration: JWT_SECRET must be at least 32 characters');
    expect(log.text).not.toContain('too-short-a-secret');
  });

  it('log a JWT_PUBLIC_KEY that is well formed but cannot be imported as 500, with the reason', async () => {
    // A well-formed SPKI PEM, of a curve the bridge does not verify with (ES256 is P-256).
    const { publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-384' });
    const pem = publicKey.export({ type: 'spki', format: 'pem' }).toString();
    const { line, log } = await misconfigured({ JWT_PUBLIC_KEY: pem, JWT_AUDIENCE: AUDIENCE });
    expect(line).toMatchObject({ code: 'MISCONFIGURED', status: 500 });
    expect(log.text).toContain('pgwire-bridge: invalid configuration: JWT_PUBLIC_KEY could not be imported');
  });
});
