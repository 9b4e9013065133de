import { jwtVerify, type JWTPayload } from 'jose';
import type { JwtPolicy } from '../config.js';
import { TOKEN_PROTOCOL_PREFIX } from '../../common/subprotocols.js';
import { ASYMMETRIC, verificationKey } from './jwt-keys.js';

export { KeyError } from './jwt-keys.js';

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

/**
 * Verifies signature, algorithm, exp, nbf, aud (and iss when configured); throws when any fails.
 * Throws KeyError instead when the configured key itself cannot be imported: that is the
 * operator's problem, to be logged, not the client's.
 */
export async function verifyToken(token: string, policy: JwtPolicy): Promise<JWTPayload> {
  const key = await verificationKey(policy);
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
