import { exportJWK, exportSPKI, generateKeyPair, SignJWT } from 'jose';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig, loadConfigAsync, type Env } from '../../worker/config.js';
import { KeyError, verifyToken } from '../../worker/policy/edge-auth.js';
import { configProblems } from '../support/config-problems.js';

const AUDIENCE = 'a';
const withKey = (key: string): Env => ({ PG_HOST: 'h', JWT_PUBLIC_KEY: key, JWT_AUDIENCE: AUDIENCE });

// A DER SEQUENCE with nothing in it: the right shape, and no key at all.
const EMPTY_SPKI = '-----BEGIN PUBLIC KEY-----\nMAA=\n-----END PUBLIC KEY-----';
const BAD_POINT_JWK = JSON.stringify({ kty: 'EC', crv: 'P-256', x: 'AAAA', y: 'AAAA' });

describe('token keys are checked when the configuration is loaded', () => {
  it.each([
    ['a PKCS#1 PEM', '-----BEGIN RSA PUBLIC KEY-----\nMAA=\n-----END RSA PUBLIC KEY-----'],
    ['a private key PEM', '-----BEGIN PRIVATE KEY-----\nMAA=\n-----END PRIVATE KEY-----'],
    ['a PEM body that is not base64', '-----BEGIN PUBLIC KEY-----\n@@@@\n-----END PUBLIC KEY-----'],
    ['a PEM body that is not DER', '-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----'],
    ['a JWK that is not JSON', '{kty: RSA}'],
    ['a private JWK', JSON.stringify({ kty: 'EC', crv: 'P-256', x: 'AAAA', y: 'AAAA', d: 'AAAA' })],
    ['an octet JWK', JSON.stringify({ kty: 'oct', k: 'AAAA' })],
    ['an EC JWK on another curve', JSON.stringify({ kty: 'EC', crv: 'P-384', x: 'AAAA', y: 'AAAA' })],
    ['an RSA JWK without its exponent', JSON.stringify({ kty: 'RSA', n: 'AAAA' })],
    ['a bare string', 'not a key'],
  ])('refuses %s synchronously', (_, key) => {
    expect(configProblems(withKey(key))).toEqual([expect.stringMatching(/^JWT_PUBLIC_KEY/)]);
  });

  it('refuses a JWKS URL that is not http(s)', () => {
    for (const url of ['ftp://keys.example.com/jwks', 'https://', 'keys.example.com/jwks']) {
      expect(configProblems({ PG_HOST: 'h', JWT_JWKS_URL: url, JWT_AUDIENCE: AUDIENCE })).toEqual([
        'JWT_JWKS_URL must be an http(s) URL',
      ]);
    }
  });

  it.each([
    ['an SPKI PEM with no key in it', EMPTY_SPKI],
    ['a P-256 JWK whose point is not on the curve', BAD_POINT_JWK],
  ])('loadConfigAsync rejects %s with ConfigError, every time, and verifyToken with KeyError', async (_, key) => {
    const env = withKey(key);
    expect(loadConfig(env).jwt).not.toBeNull(); // the shape passes
    for (let attempt = 0; attempt < 2; attempt++) {
      const error = await loadConfigAsync(env).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(ConfigError);
      expect((error as ConfigError).problems).toEqual([expect.stringMatching(/^JWT_PUBLIC_KEY could not be imported/)]);
    }
    await expect(verifyToken('a.b.c', loadConfig(withKey(key)).jwt!)).rejects.toBeInstanceOf(KeyError);
  });

  it('loadConfigAsync accepts an ES256 PEM and an RS256 JWK, and tokens verify against them', async () => {
    for (const alg of ['ES256', 'RS256'] as const) {
      const { publicKey, privateKey } = await generateKeyPair(alg);
      const key = alg === 'ES256' ? await exportSPKI(publicKey) : JSON.stringify(await exportJWK(publicKey));
      const config = await loadConfigAsync(withKey(key));
      const token = await new SignJWT({ sub: 'x' })
        .setProtectedHeader({ alg })
        .setAudience(AUDIENCE)
        .setExpirationTime('5m')
        .sign(privateKey);
      expect(await verifyToken(token, config.jwt!)).toMatchObject({ sub: 'x' });
    }
  });

  it('loadConfigAsync rejects what loadConfig rejects', async () => {
    await expect(loadConfigAsync({})).rejects.toBeInstanceOf(ConfigError);
  });
});
