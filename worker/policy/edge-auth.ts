import { createRemoteJWKSet, importJWK, importSPKI, jwtVerify, type JWTPayload, type JWTVerifyGetKey } from 'jose';
import type { JwtPolicy } from '../config.js';
import { TOKEN_PROTOCOL_PREFIX } from '../protocol/subprotocols.js';

const ASYMMETRIC = ['RS256', 'ES256'];
const keys = new WeakMap<JwtPolicy, Uint8Array | JWTVerifyGetKey>();

/**
 * The token a client presents: the `token` query parameter, or a WebSocket subprotocol
 * `pgwire-bridge.token.<jwt>`. Null when there is none.
 */
export function presentedToken(request: Request): string | null {
  const fromQuery = new URL(request.url).searchParams.get('token');
  if (fromQuery) return fromQuery;
  for (const protocol of (request.headers.get('Sec-WebSocket-Protocol') ?? '').split(',')) {
    const trimmed = protocol.trim();
    if (trimmed.startsWith(TOKEN_PROTOCOL_PREFIX)) return trimmed.slice(TOKEN_PROTOCOL_PREFIX.length);
  }
  return null;
}

/** Verifies signature, algorithm, exp, nbf, aud (and iss when configured); throws when any fails. */
export async function verifyToken(token: string, policy: JwtPolicy): Promise<JWTPayload> {
  const key = keyFor(policy);
  const options = {
    audience: policy.audience,
    algorithms: policy.secret ? ['HS256'] : ASYMMETRIC,
    requiredClaims: ['exp'],
    ...(policy.issuer && { issuer: policy.issuer }),
  };
  const { payload } =
    key instanceof Uint8Array ? await jwtVerify(token, key, options) : await jwtVerify(token, key, options);
  return payload;
}

function keyFor(policy: JwtPolicy): Uint8Array | JWTVerifyGetKey {
  let key = keys.get(policy);
  if (!key) {
    key = policy.secret
      ? new TextEncoder().encode(policy.secret)
      : policy.jwksUrl
        ? createRemoteJWKSet(new URL(policy.jwksUrl))
        : publicKeyResolver(policy.publicKey!);
    keys.set(policy, key);
  }
  return key;
}

/** A configured public key, imported for the algorithm the token names (RS256 or ES256 only). */
function publicKeyResolver(text: string): JWTVerifyGetKey {
  const imported = new Map<string, Promise<CryptoKey | Uint8Array>>();
  return (header) => {
    const alg = header.alg ?? '';
    if (!ASYMMETRIC.includes(alg)) throw new Error(`algorithm ${alg} not accepted`);
    let key = imported.get(alg);
    if (!key) {
      key = text.trim().startsWith('{') ? importJWK(JSON.parse(text), alg) : importSPKI(text, alg);
      imported.set(alg, key);
    }
    return key;
  };
}
