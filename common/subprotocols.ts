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
  if (offered.includes(FLOW_CONTROL_PROTOCOL)) return FLOW_CONTROL_PROTOCOL;
  return offered.find((protocol) => protocol.startsWith(TOKEN_PROTOCOL_PREFIX)) ?? null;
}
