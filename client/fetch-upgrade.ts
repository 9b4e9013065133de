import type { WebSocketLike } from './socket.js';

/** A WebSocket handed out by a 101 response, as Cloudflare Workers do: open once accepted. */
export interface AcceptableWebSocket extends WebSocketLike {
  accept(): void;
}

/**
 * A fetch that can upgrade to a WebSocket: the global fetch in Cloudflare Workers, or a service
 * binding's `fetch` (`env.BRIDGE.fetch.bind(env.BRIDGE)`).
 */
export type UpgradingFetch = (
  url: string,
  init: { headers: Record<string, string> },
) => Promise<{
  status: number;
  headers: { get(name: string): string | null };
  webSocket?: AcceptableWebSocket | null;
  text(): Promise<string>;
}>;

/** Longest part of a refusal's body quoted in the error. */
const QUOTED_BODY_CHARS = 200;

/**
 * Opens a WebSocket with `fetch` and `Upgrade: websocket` instead of the WebSocket constructor.
 * Resolves with the open socket and the subprotocol the bridge chose (a fetched WebSocket's own
 * `protocol` is empty); rejects with the HTTP status and body when the bridge refuses.
 */
export async function openWithFetch(
  fetchImpl: UpgradingFetch,
  url: string,
  protocols: readonly string[],
): Promise<{ webSocket: AcceptableWebSocket; protocol: string }> {
  const headers: Record<string, string> = { Upgrade: 'websocket' };
  if (protocols.length > 0) headers['Sec-WebSocket-Protocol'] = protocols.join(', ');
  const response = await fetchImpl(url.replace(/^ws(s?):/i, 'http$1:'), { headers });
  const webSocket = response.webSocket;
  if (response.status !== 101 || !webSocket) {
    const body = (await response.text().catch(() => '')).trim().slice(0, QUOTED_BODY_CHARS);
    throw new Error(`the bridge answered HTTP ${response.status}${body ? `: ${body}` : ''}`);
  }
  // Set before accept(): workerd delivers binary messages as empty Blobs otherwise.
  webSocket.binaryType = 'arraybuffer';
  webSocket.accept();
  return { webSocket, protocol: response.headers.get('Sec-WebSocket-Protocol') ?? '' };
}
