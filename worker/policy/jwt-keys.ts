import { createRemoteJWKSet, importJWK, importSPKI, type JWK, type JWTVerifyGetKey } from 'jose';
import type { JwtPolicy } from '../config.js';

/** Token algorithms a public key (JWT_PUBLIC_KEY, JWT_JWKS_URL) may verify; JWT_SECRET verifies HS256 only. */
export const ASYMMETRIC = ['RS256', 'ES256'];

/** The configured key could not be imported: the bridge's configuration is wrong, not the token. */
export class KeyError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'KeyError';
  }
}

export type VerificationKey = Uint8Array | JWTVerifyGetKey;

const SPKI_PEM = /^-----BEGIN PUBLIC KEY-----\s*([A-Za-z0-9+/=\s]+?)\s*-----END PUBLIC KEY-----$/;

/**
 * What is wrong with JWT_PUBLIC_KEY's shape, checked without importing it: an SPKI PEM whose body
 * is base64 DER, or a public RSA or P-256 JWK. Null when the shape is right.
 */
export function publicKeyShapeProblem(text: string): string | null {
  const trimmed = text.trim();
  if (trimmed.startsWith('{')) {
    let jwk: Record<string, unknown>;
    try {
      jwk = JSON.parse(trimmed) as Record<string, unknown>;
    } catch {
      return 'JWT_PUBLIC_KEY is not valid JSON';
    }
    if ('d' in jwk) return 'JWT_PUBLIC_KEY is a private key; give the public key only';
    const strings = (...names: string[]) => names.every((name) => typeof jwk[name] === 'string' && jwk[name] !== '');
    if (jwk.kty === 'RSA' && strings('n', 'e')) return null;
    if (jwk.kty === 'EC' && jwk.crv === 'P-256' && strings('x', 'y')) return null;
    return 'JWT_PUBLIC_KEY must be an RSA JWK (n, e) or an EC P-256 JWK (x, y)';
  }
  const body = SPKI_PEM.exec(trimmed)?.[1];
  if (body === undefined) return 'JWT_PUBLIC_KEY must be a PEM "-----BEGIN PUBLIC KEY-----" (SPKI) or a JWK';
  let der: string;
  try {
    der = atob(body.replace(/\s/g, ''));
  } catch {
    return 'JWT_PUBLIC_KEY: the PEM body is not base64';
  }
  // DER: a SEQUENCE (0x30) whose length runs to the end.
  if (der.charCodeAt(0) !== 0x30 || der.length < 2) return 'JWT_PUBLIC_KEY: the PEM body is not a DER SEQUENCE';
  return null;
}

const keys = new WeakMap<JwtPolicy, Promise<VerificationKey>>();

/**
 * The key tokens are verified with, imported once per policy. Rejects with KeyError when the
 * configured key cannot be imported, every time it is asked, so the cause can be logged.
 */
export function verificationKey(policy: JwtPolicy): Promise<VerificationKey> {
  let key = keys.get(policy);
  if (!key) {
    key = policy.secret
      ? Promise.resolve(new TextEncoder().encode(policy.secret))
      : policy.jwksUrl
        ? Promise.resolve(createRemoteJWKSet(new URL(policy.jwksUrl)))
        : importPublicKey(policy.publicKey!);
    keys.set(policy, key);
  }
  return key;
}

/** Imports an SPKI PEM or JWK as the one algorithm it is for; tokens naming another are refused. */
async function importPublicKey(text: string): Promise<JWTVerifyGetKey> {
  const trimmed = text.trim();
  const reasons: string[] = [];
  for (const alg of ASYMMETRIC) {
    try {
      const key = trimmed.startsWith('{')
        ? await importJWK(JSON.parse(trimmed) as JWK, alg)
        : await importSPKI(trimmed, alg);
      return (header) => {
        if (header.alg !== alg) throw new Error(`algorithm ${String(header.alg)} not accepted`);
        return key;
      };
    } catch (error) {
      reasons.push(`${alg}: ${error instanceof Error ? error.message : String(error)}`);
    }
  }
  throw new KeyError(`JWT_PUBLIC_KEY could not be imported as an RS256 or ES256 key (${reasons.join('; ')})`);
}
