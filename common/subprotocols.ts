/**
 * What the bridge and its client socket agree on besides PostgreSQL's own bytes: two WebSocket
 * subprotocols (a token carrier, and flow control) and the text messages flow control uses.
 * Binary WebSocket messages are always pure PostgreSQL bytes; text messages are flow control.
 * Shared by worker/ and client/; no I/O and no platform types.
 */

/** Subprotocol prefix that carries a token, for browsers, which cannot set headers on a WebSocket. */
export const TOKEN_PROTOCOL_PREFIX = 'pgwire-bridge.token.';

/**
 * The subprotocol a client asks for to take part in flow control (flow-control.ts). v1 counted
 * bytes in its acknowledgements, which a client could send without reading anything; v2 echoes
 * marks, which it can only echo after receiving them.
 */
export const FLOW_CONTROL_PROTOCOL = 'pgwire-bridge.v2';

/**
 * Startup in the upgrade: a client offers its StartupMessage (which holds no password) as the
 * subprotocol `pgwire-bridge.startup.<base64url>` beside this one, and a bridge that took it in
 * answers with this one: flow control as v2, with the StartupMessage counted as the first bytes
 * the client sent. A bridge that answers plain v2 did not take it, and the client sends it as
 * its first binary message, as before.
 */
export const FLOW_CONTROL_STARTUP_PROTOCOL = 'pgwire-bridge.v2.startup';

/** Subprotocol prefix that carries the client's first bytes (its StartupMessage), base64url-encoded. */
export const STARTUP_PROTOCOL_PREFIX = 'pgwire-bridge.startup.';

/**
 * Longest base64url a client puts in the startup subprotocol (3 KiB of bytes): far inside the
 * header sizes servers and proxies accept. A longer StartupMessage goes the old way.
 */
export const MAX_INLINE_STARTUP_CHARS = 4096;

/**
 * Flow-control text messages, the same from either side:
 *   `m<id>`  a mark: every binary byte I sent before this message is counted under <id>;
 *   `a<id>`  an echo: I have consumed every byte you sent before your mark <id>;
 *   `k`      a keepalive: Cloudflare closes a WebSocket after 100 s without traffic, and
 *            browsers cannot send ping frames. It is not activity: a session that only keeps
 *            alive is still idle.
 */
export type FlowMessage =
  | { readonly kind: 'mark'; readonly id: string }
  | { readonly kind: 'echo'; readonly id: string }
  | { readonly kind: 'keepalive' };

export const KEEPALIVE = 'k';
const MARK = 'm';
const ECHO = 'a';

/** Mark ids: short, URL-safe, so that a message never grows past a few bytes. */
const ID = /^[0-9A-Za-z_-]{1,24}$/;

export const markMessage = (id: string): string => `${MARK}${id}`;
export const echoMessage = (id: string): string => `${ECHO}${id}`;

/** The flow-control message in `text`, or null when it is not one. */
export function parseFlowMessage(text: string): FlowMessage | null {
  if (text === KEEPALIVE) return { kind: 'keepalive' };
  const id = text.slice(1);
  if (!ID.test(id)) return null;
  if (text.startsWith(MARK)) return { kind: 'mark', id };
  if (text.startsWith(ECHO)) return { kind: 'echo', id };
  return null;
}

/**
 * The subprotocol to answer an upgrade with, from those the client offered (the header's values):
 * flow control when offered, else the token carrier, since browsers and `ws` drop a connection
 * whose answer names none of the protocols they offered. null when none is the bridge's.
 */
export function chooseSubprotocol(offered: readonly string[]): string | null {
  if (offered.includes(FLOW_CONTROL_STARTUP_PROTOCOL) && inlineStartupOf(offered) !== null) {
    return FLOW_CONTROL_STARTUP_PROTOCOL;
  }
  if (offered.includes(FLOW_CONTROL_PROTOCOL)) return FLOW_CONTROL_PROTOCOL;
  return offered.find((protocol) => protocol.startsWith(TOKEN_PROTOCOL_PREFIX)) ?? null;
}

/** The base64url text of the startup subprotocol among those offered, or null. */
export function inlineStartupOf(offered: readonly string[]): string | null {
  const protocol = offered.find((p) => p.startsWith(STARTUP_PROTOCOL_PREFIX));
  return protocol === undefined ? null : protocol.slice(STARTUP_PROTOCOL_PREFIX.length);
}

const BASE64URL = /^[A-Za-z0-9_-]*$/;

/** Bytes as unpadded base64url: an HTTP token, fit for a subprotocol value. */
export function encodeBase64Url(bytes: Uint8Array): string {
  let binary = '';
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return btoa(binary).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

/** The bytes of unpadded base64url text, or null when it is not that. */
export function decodeBase64Url(text: string): Uint8Array | null {
  if (!BASE64URL.test(text) || text.length % 4 === 1) return null;
  const binary = atob(text.replace(/-/g, '+').replace(/_/g, '/'));
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}
