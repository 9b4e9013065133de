import { Socket as BridgeSocket, type SocketOptions } from './socket.js';

/**
 * A `net`-compatible module for code that cannot pass a socket to its driver: bundlers alias `net`
 * to this module (esbuild `alias: { net: 'pgwire-bridge/net' }`, Vite `resolve.alias`), and a
 * driver's `new net.Socket()` or `net.connect(port, host)` reaches PostgreSQL through the bridge.
 * Call `configure({ url })` once before the driver connects.
 */

let defaults: Partial<SocketOptions> = {};

/** Sets the options every socket of this module starts with: at least the bridge URL. */
export function configure(options: Partial<SocketOptions>): void {
  defaults = { ...defaults, ...options };
}

export class Socket extends BridgeSocket {
  constructor(options: Partial<SocketOptions> = {}) {
    const merged = { ...defaults, ...options };
    if (!merged.url) throw new Error('pgwire-bridge/net: call configure({ url }) before creating sockets');
    super(merged as SocketOptions);
  }
}

type ConnectOptions = { port?: number | string; host?: string };

/** `net.connect(port, host?, listener?)` or `net.connect({ port, host }, listener?)`. */
export function connect(
  portOrOptions: number | string | ConnectOptions,
  hostOrListener?: string | (() => void),
  listener?: () => void,
): Socket {
  const socket = new Socket();
  if (typeof portOrOptions === 'object') {
    return socket.connect(portOrOptions.port, portOrOptions.host, hostOrListener as (() => void) | undefined);
  }
  if (typeof hostOrListener === 'function') return socket.connect(portOrOptions, undefined, hostOrListener);
  return socket.connect(portOrOptions, hostOrListener, listener);
}

export const createConnection = connect;

export function isIPv4(input: string): boolean {
  return /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/.test(input);
}

export function isIPv6(input: string): boolean {
  return input.includes(':') && /^[0-9a-fA-F:.]+$/.test(input) && input.split('::').length <= 2;
}

export function isIP(input: string): 0 | 4 | 6 {
  return isIPv4(input) ? 4 : isIPv6(input) ? 6 : 0;
}

export default { Socket, connect, createConnection, configure, isIP, isIPv4, isIPv6 };
