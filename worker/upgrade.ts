import type { JWTPayload } from 'jose';
import {
  chooseSubprotocol,
  decodeBase64Url,
  FLOW_CONTROL_PROTOCOL,
  FLOW_CONTROL_STARTUP_PROTOCOL,
  inlineStartupOf,
} from '../common/subprotocols.js';
import { ConfigError, loadConfigAsync, type BridgeConfig, type Env } from './config.js';
import { BRIDGE_PATH } from './paths.js';
import { presentedToken, verifyToken } from './policy/edge-auth.js';
import { rateLimitKey } from './policy/rate-limit-key.js';
import { checkFixedTarget, chooseTarget, type Target } from './policy/targets.js';
import { BridgeError } from './protocol/errors.js';
import { BridgeSession } from './session.js';

export interface UpgradeOptions {
  /** The path that upgrades (default BRIDGE_PATH, `/v1`); others answer 404. */
  readonly path?: string;
}

/**
 * Upgrades the bridge's path to a bridged session, after the checks that need no database: the
 * Origin of browser requests, the client's token when configured, flow control when required, and
 * the rate limit. Refusals here are HTTP statuses, given before any TCP connection exists, each
 * logged as one JSON line with its code (never the token); anything unexpected is an internal error.
 */
export async function handleUpgrade(request: Request, env: Env, options: UpgradeOptions = {}): Promise<Response> {
  try {
    return await upgrade(request, env, options.path ?? BRIDGE_PATH);
  } catch (error) {
    if (!(error instanceof BridgeError)) console.error(`pgwire-bridge: internal error: ${String(error)}`);
    const refusal =
      error instanceof BridgeError ? error : new BridgeError('INTERNAL_ERROR', 'internal error in the bridge');
    return refuse(request, refusal);
  }
}

async function upgrade(request: Request, env: Env, path: string): Promise<Response> {
  const url = new URL(request.url);
  if (url.pathname !== path) {
    throw new BridgeError('NOT_FOUND', `not found: the bridge listens on ${path}`);
  }
  if (request.method !== 'GET') {
    throw new BridgeError('METHOD_NOT_ALLOWED', 'method not allowed: use a WebSocket upgrade (GET)');
  }
  if (request.headers.get('Upgrade')?.toLowerCase() !== 'websocket') {
    throw new BridgeError('UPGRADE_REQUIRED', 'upgrade required: connect with a WebSocket');
  }

  let config: BridgeConfig;
  try {
    config = await loadConfigAsync(env);
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    console.error(`pgwire-bridge: ${error.message}`);
    throw new BridgeError('MISCONFIGURED', 'the bridge is misconfigured; its operator can see why in the Worker logs');
  }

  // Browsers always send Origin; other clients do not, and are not at risk of cross-site use.
  const origin = request.headers.get('Origin');
  if (origin !== null && !config.allowedOrigin(origin)) {
    throw new BridgeError('ORIGIN_NOT_ALLOWED', 'origin not allowed');
  }

  let claims: JWTPayload | null = null;
  if (config.jwt) {
    const token = presentedToken(request);
    if (token === null) throw new BridgeError('TOKEN_REQUIRED', 'a token is required');
    try {
      claims = await verifyToken(token, config.jwt);
    } catch {
      throw new BridgeError('TOKEN_INVALID', 'the token is invalid or expired');
    }
  }

  const offered = (request.headers.get('Sec-WebSocket-Protocol') ?? '').split(',').map((p) => p.trim());
  const subprotocol = chooseSubprotocol(offered);
  const flowControl = subprotocol === FLOW_CONTROL_PROTOCOL || subprotocol === FLOW_CONTROL_STARTUP_PROTOCOL;
  const startup = subprotocol === FLOW_CONTROL_STARTUP_PROTOCOL ? inlineStartup(offered) : null;
  if (!flowControl && config.flowControl === 'require') {
    throw new BridgeError(
      'FLOW_CONTROL_REQUIRED',
      `this bridge requires the WebSocket subprotocol ${FLOW_CONTROL_PROTOCOL} (flow control)`,
    );
  }

  // Per client, before any TCP: the token's subject when tokens are checked, else the address (its /64).
  if (env.RATE_LIMITER) {
    const { success } = await env.RATE_LIMITER.limit({
      key: rateLimitKey(request.headers.get('CF-Connecting-IP'), claims?.sub),
    });
    if (!success) throw new BridgeError('RATE_LIMITED', 'too many connections from this client; try again later');
  }

  const [client, server] = Object.values(new WebSocketPair()) as [WebSocket, WebSocket];
  // Without this, binary messages arrive as Blobs on current compatibility dates.
  (server as WebSocket & { binaryType: string }).binaryType = 'arraybuffer';
  server.accept();
  // The target is decided before any TCP: the fixed one, or the client's pick from the allowlist.
  let target: Target = { host: config.host, port: config.port };
  let refusal: BridgeError | undefined;
  const [host, port] = [url.searchParams.get('host'), url.searchParams.get('port')];
  if (config.targets) {
    const chosen = chooseTarget(config.targets, host, port);
    if (typeof chosen === 'string') refusal = new BridgeError('TARGET_NOT_ALLOWED', chosen);
    else target = chosen;
  } else {
    const refused = checkFixedTarget(target, host, port);
    if (refused !== null) refusal = new BridgeError('TARGET_NOT_ALLOWED', refused);
  }
  new BridgeSession(server, config, {
    target,
    flowControl,
    claims,
    metrics: env.METRICS,
    ...(refusal && { refusal }),
    ...(startup && { startup }),
  });
  const headers: HeadersInit = subprotocol ? { 'Sec-WebSocket-Protocol': subprotocol } : {};
  return new Response(null, { status: 101, webSocket: client, headers });
}

/**
 * Longest startup subprotocol value taken: a StartupMessage (at most 10,000 bytes) in base64url.
 * Clients send at most MAX_INLINE_STARTUP_CHARS; this only keeps a client from making the bridge
 * decode a header of any size.
 */
const MAX_INLINE_STARTUP_ACCEPTED_CHARS = 16 * 1024;

/** The client's first bytes from the startup subprotocol; the session judges them as its first message. */
function inlineStartup(offered: readonly string[]): Uint8Array {
  const text = inlineStartupOf(offered) ?? '';
  const bytes = text.length <= MAX_INLINE_STARTUP_ACCEPTED_CHARS ? decodeBase64Url(text) : null;
  if (bytes === null || bytes.length === 0) {
    throw new BridgeError('INVALID_INLINE_STARTUP', 'the startup subprotocol does not hold base64url bytes');
  }
  return bytes;
}

/** The HTTP answer to a refused upgrade, logged as one line an operator can search for by code. */
function refuse(request: Request, error: BridgeError): Response {
  console.log(
    JSON.stringify({
      event: 'pgwire-bridge.refused',
      code: error.code,
      status: error.httpStatus,
      path: new URL(request.url).pathname,
      origin: request.headers.get('Origin'),
      client: request.headers.get('CF-Connecting-IP'),
    }),
  );
  const headers: Record<string, string> = { 'Content-Type': 'text/plain; charset=utf-8' };
  if (error.code === 'METHOD_NOT_ALLOWED') headers.Allow = 'GET';
  if (error.code === 'UPGRADE_REQUIRED') headers.Upgrade = 'websocket';
  if (error.httpStatus === 401) headers['WWW-Authenticate'] = 'Bearer';
  if (error.code === 'RATE_LIMITED') headers['Retry-After'] = '10';
  return new Response(`${error.message}\n`, { status: error.httpStatus, headers });
}
