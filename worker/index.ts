import type { JWTPayload } from 'jose';
import { ConfigError, loadConfig, type BridgeConfig, type Env } from './config.js';
import { BRIDGE_PATH } from './paths.js';
import { presentedToken, verifyToken } from './policy/edge-auth.js';
import { chooseTarget, type Target } from './policy/targets.js';
import { BridgeError } from './protocol/errors.js';
import { chooseSubprotocol, FLOW_CONTROL_PROTOCOL } from './protocol/subprotocols.js';
import { BridgeSession } from './session.js';

export default {
  /**
   * Upgrades `/v1` to a bridged session, after the checks that need no database: the Origin of
   * browser requests and, when configured, the client's token. Refusals here are HTTP statuses,
   * given before any TCP connection exists.
   */
  async fetch(request: Request, env: Env): Promise<Response> {
    const url = new URL(request.url);
    if (url.pathname !== BRIDGE_PATH) return text(404, `not found: the bridge listens on ${BRIDGE_PATH}`);
    if (request.method !== 'GET') {
      return text(405, 'method not allowed: use a WebSocket upgrade (GET)', { Allow: 'GET' });
    }
    if (request.headers.get('Upgrade')?.toLowerCase() !== 'websocket') {
      return text(426, 'upgrade required: connect with a WebSocket', { Upgrade: 'websocket' });
    }

    let config: BridgeConfig;
    try {
      config = loadConfig(env);
    } catch (error) {
      if (!(error instanceof ConfigError)) throw error;
      console.error(`pgwire-bridge: ${error.message}`);
      return text(500, 'the bridge is misconfigured; its operator can see why in the Worker logs');
    }

    // Browsers always send Origin; other clients do not, and are not at risk of cross-site use.
    const origin = request.headers.get('Origin');
    if (origin !== null && !config.allowedOrigin(origin)) return text(403, 'origin not allowed');

    let claims: JWTPayload | null = null;
    if (config.jwt) {
      const token = presentedToken(request);
      const challenge = { 'WWW-Authenticate': 'Bearer' };
      if (token === null) return text(401, 'a token is required', challenge);
      try {
        claims = await verifyToken(token, config.jwt);
      } catch {
        return text(401, 'the token is invalid or expired', challenge);
      }
    }

    const offered = (request.headers.get('Sec-WebSocket-Protocol') ?? '').split(',').map((p) => p.trim());
    const subprotocol = chooseSubprotocol(offered);
    const flowControl = subprotocol === FLOW_CONTROL_PROTOCOL;
    if (!flowControl && config.flowControl === 'require') {
      return text(400, `this bridge requires the WebSocket subprotocol ${FLOW_CONTROL_PROTOCOL} (flow control)`);
    }

    const [client, server] = Object.values(new WebSocketPair()) as [WebSocket, WebSocket];
    // Without this, binary messages arrive as Blobs on current compatibility dates.
    (server as WebSocket & { binaryType: string }).binaryType = 'arraybuffer';
    server.accept();
    // The target is decided before any TCP: the fixed one, or the client's pick from the allowlist.
    let target: Target = { host: config.host, port: config.port };
    let refusal: BridgeError | undefined;
    if (config.targets) {
      const chosen = chooseTarget(config.targets, url.searchParams.get('host'), url.searchParams.get('port'));
      if (typeof chosen === 'string') refusal = new BridgeError('TARGET_NOT_ALLOWED', chosen);
      else target = chosen;
    }
    new BridgeSession(server, config, {
      target,
      flowControl,
      claims,
      metrics: env.METRICS,
      ...(refusal && { refusal }),
    });
    const headers: HeadersInit = subprotocol ? { 'Sec-WebSocket-Protocol': subprotocol } : {};
    return new Response(null, { status: 101, webSocket: client, headers });
  },
} satisfies ExportedHandler<Env>;

function text(status: number, body: string, headers: Record<string, string> = {}): Response {
  return new Response(`${body}\n`, {
    status,
    headers: { 'Content-Type': 'text/plain; charset=utf-8', ...headers },
  });
}
