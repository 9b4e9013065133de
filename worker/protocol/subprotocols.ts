/**
 * The WebSocket subprotocols the bridge and its client shim agree on: a token carrier, and flow
 * control. Flow control between the bridge and its client shim is negotiated as a subprotocol.
 * workerd's server WebSocket has no bufferedAmount and send() never blocks, so the only way to know
 * the client keeps up is for the client to say so: it sends, as a text message, the decimal count of
 * server bytes it has handed to its driver. The bridge stops reading from PostgreSQL while
 * FLOW_WINDOW_BYTES sent are unacknowledged. Binary messages stay pure PostgreSQL bytes.
 */

/** Subprotocol prefix that carries a token, for browsers, which cannot set headers on a WebSocket. */
export const TOKEN_PROTOCOL_PREFIX = 'pgwire-bridge.token.';

/** The subprotocol a client asks for to take part in flow control. */
export const FLOW_CONTROL_PROTOCOL = 'pgwire-bridge.v1';

/**
 * Both directions use the same numbers. Toward the client: the bridge stops reading from
 * PostgreSQL while FLOW_WINDOW_BYTES it sent are unacknowledged by the client. Toward PostgreSQL:
 * the bridge acknowledges, the same way, bytes PostgreSQL has accepted, and the client holds
 * back (write() returns false) while FLOW_WINDOW_BYTES it sent are unacknowledged by the bridge.
 */

/** Unacknowledged bytes after which the sender stops. */
export const FLOW_WINDOW_BYTES = 4 * 1024 * 1024;

/** How often (in bytes delivered) each side acknowledges: a quarter window keeps data flowing. */
export const FLOW_ACK_BYTES = FLOW_WINDOW_BYTES / 4;

/**
 * "0", an acknowledgement of nothing, is the client's keepalive: Cloudflare closes a WebSocket
 * after 100 s without traffic, and browsers cannot send ping frames. It is not activity: a
 * session that only keeps alive is still idle.
 */
export const KEEPALIVE = '0';

const ACK = /^(0|[1-9][0-9]{0,9})$/;

/** The byte count in an acknowledgement (0 for a keepalive), or null when the text is not one. */
export function parseAck(text: string): number | null {
  return ACK.test(text) ? Number(text) : null;
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
