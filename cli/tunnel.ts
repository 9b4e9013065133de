import { createServer, type AddressInfo, type Server, type Socket as TcpSocket } from 'node:net';
import { Socket as BridgeSocket, type SocketError, type WebSocketConstructor } from '../client/socket.js';
import { readUint32 } from '../worker/protocol/bytes.js';
import { CANCEL_REQUEST_CODE } from '../worker/protocol/constants.js';
import { encodeFatalError } from '../worker/protocol/error-response.js';
import { BridgeError } from '../worker/protocol/errors.js';

/** How long closing waits for the WebSockets' close handshakes. */
const CLOSE_GRACE_MS = 1000;

export interface TunnelOptions {
  /** The bridge endpoint, `wss://…/v1`. */
  readonly url: string;
  /** Where to accept TCP connections; loopback unless told otherwise. */
  readonly host: string;
  readonly port: number;
  readonly token?: string | undefined;
  readonly WebSocket: WebSocketConstructor;
  /** One line per connection that could not reach the bridge. */
  readonly log?: (line: string) => void;
}

export interface RunningTunnel {
  readonly host: string;
  readonly port: number;
  /** Stops accepting, ends every connection (each bridge session sends PostgreSQL a Terminate), and resolves when all are closed. */
  close(): Promise<void>;
}

/**
 * TCP → WebSocket: each TCP connection accepted becomes one WebSocket to the bridge, through the
 * client socket (flow control included), so psql, pgbench, pg_dump and drivers in any language
 * reach PostgreSQL through the bridge. Backpressure is real both ways: a full WebSocket window
 * pauses the TCP socket, and a TCP client that stops reading pauses the bridge socket, which then
 * stops echoing the bridge's marks, so the bridge stops reading PostgreSQL.
 */
export async function startTunnel(options: TunnelOptions): Promise<RunningTunnel> {
  /** Each TCP connection, and when its WebSocket has closed. */
  const connections = new Map<TcpSocket, Promise<void>>();
  const server: Server = createServer({ noDelay: true }, (tcp) => {
    const closed = pipeConnection(tcp, options).finally(() => connections.delete(tcp));
    connections.set(tcp, closed);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => resolve());
  });
  const address = server.address() as AddressInfo;
  return {
    host: address.address,
    port: address.port,
    close: async () => {
      const stopped = new Promise<void>((resolve) => server.close(() => resolve()));
      const closing = [...connections.values()];
      for (const tcp of connections.keys()) tcp.destroy();
      // Each WebSocket gets its close frame out, so the bridge ends its session in order.
      let grace: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([
        Promise.all(closing),
        new Promise((resolve) => (grace = setTimeout(resolve, CLOSE_GRACE_MS))),
      ]);
      clearTimeout(grace);
      await stopped;
    },
  };
}

/** One TCP connection and its WebSocket to the bridge, ended together; resolves once the WebSocket has closed. */
function pipeConnection(tcp: TcpSocket, options: TunnelOptions): Promise<void> {
  // 'connect' here means the bridge was reached: the WebSocket opens first, then the client speaks.
  const bridge = new BridgeSocket({
    url: options.url,
    WebSocket: options.WebSocket,
    token: options.token,
    startupInUpgrade: false,
  });
  const first = new FirstPacket();
  let opened = false;

  tcp.on('data', (chunk: Buffer) => {
    first.push(chunk);
    if (!bridge.write(chunk)) tcp.pause();
  });
  bridge.on('drain', () => tcp.resume());
  bridge.on('connect', () => (opened = true));
  bridge.on('data', (chunk: Uint8Array) => {
    if (!tcp.write(chunk)) bridge.pause();
  });
  tcp.on('drain', () => bridge.resume());

  // Either side ending ends the other: the bridge then sends PostgreSQL a Terminate.
  tcp.on('end', () => bridge.end());
  tcp.on('close', () => bridge.destroy());
  tcp.on('error', () => bridge.destroy());
  bridge.on('end', () => tcp.end());
  bridge.on('error', (error: SocketError) => {
    if (opened || tcp.destroyed) {
      tcp.destroy();
      return;
    }
    // The bridge was never reached: say so as PostgreSQL would, so the client can print it. A
    // CancelRequest gets no answer from PostgreSQL either.
    const reason = `could not connect to the bridge: ${error.message.replace(/^could not open a WebSocket to \S+: /, '')}`;
    options.log?.(`pgwire-bridge tunnel: ${reason}`);
    if (first.isCancelRequest) tcp.end();
    else tcp.end(encodeFatalError(new BridgeError('SERVER_UNREACHABLE', reason)));
  });
  bridge.connect();
  return new Promise((resolve) => bridge.once('close', () => resolve()));
}

/** Enough of the client's first packet to tell a CancelRequest (length 16, code 1234.5678). */
class FirstPacket {
  private readonly head = new Uint8Array(8);
  private fill = 0;

  push(chunk: Uint8Array): void {
    const take = Math.min(this.head.length - this.fill, chunk.length);
    this.head.set(chunk.subarray(0, take), this.fill);
    this.fill += take;
  }

  get isCancelRequest(): boolean {
    return this.fill === this.head.length && readUint32(this.head, 4) === CANCEL_REQUEST_CODE;
  }
}

/**
 * `ws`'s WebSocket with the reason of a refused upgrade in its error: the status and the first
 * line of the body the bridge sends with it ("401 the token is invalid or expired"), where `ws`
 * alone says only "Unexpected server response: 401".
 */
export function explainingRefusals(WS: typeof import('ws').WebSocket): WebSocketConstructor {
  class Explaining extends WS {
    constructor(url: string, protocols?: string | string[], options?: object) {
      super(url, protocols, options);
      this.once('unexpected-response', (_request, response) => {
        let body = '';
        response.setEncoding('utf8');
        response.on('data', (text: string) => (body = (body + text).slice(0, 500)));
        response.on('end', () => {
          const reason = body.split('\n')[0]?.trim() ?? '';
          this.emit('error', new Error(`${response.statusCode}${reason ? ` ${reason}` : ''}`));
          this.terminate();
        });
      });
    }
  }
  return Explaining as unknown as WebSocketConstructor;
}
