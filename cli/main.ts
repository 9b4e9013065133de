/**
 * `pgwire-bridge`, the package's command. One subcommand so far:
 *
 *   pgwire-bridge tunnel wss://bridge.example.com/v1 [--listen 127.0.0.1:6543] [--token …]
 *
 * accepts TCP connections (loopback only unless told otherwise) and carries each over its own
 * WebSocket to the bridge, so that psql, pgbench, pg_dump, GUI tools and drivers in any language
 * reach PostgreSQL through it. The token may also come from PGWIRE_BRIDGE_TOKEN, which keeps it
 * out of the process list.
 */
import type { WebSocketConstructor } from '../client/socket.js';
import { parseTunnelArgs, USAGE } from './args.js';
import { explainingRefusals, startTunnel } from './tunnel.js';

/** The WebSocket to use: the global one (Node ≥ 22), else the optional `ws` peer dependency. */
async function webSocketImplementation(): Promise<WebSocketConstructor | string> {
  try {
    const ws = await import('ws');
    return explainingRefusals(ws.WebSocket);
  } catch {
    const global = (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
    return global ?? 'no WebSocket: install the ws package (npm install ws), or use Node.js 22 or newer';
  }
}

async function main(argv: readonly string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (command !== 'tunnel') {
    console.error(USAGE);
    return command === undefined || command === '--help' || command === '-h' ? 0 : 2;
  }
  const args = parseTunnelArgs(rest, process.env);
  if (typeof args === 'string') {
    console.error(`pgwire-bridge tunnel: ${args}\n\n${USAGE}`);
    return 2;
  }
  const WebSocket = await webSocketImplementation();
  if (typeof WebSocket === 'string') {
    console.error(`pgwire-bridge tunnel: ${WebSocket}`);
    return 1;
  }
  const tunnel = await startTunnel({ ...args, WebSocket, log: (line) => console.error(line) });
  const host = tunnel.host.includes(':') ? `[${tunnel.host}]` : tunnel.host;
  const bridge = new URL(args.url);
  bridge.search = ''; // a token in the query stays out of the output
  console.log(`pgwire-bridge tunnel ready: postgresql://${host}:${tunnel.port}/?sslmode=disable (to ${bridge.href})`);
  await new Promise<void>((resolve) => {
    const stop = () => {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      void tunnel.close().then(resolve);
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => {
    // Let the WebSockets' close frames out; whatever still lingers does not hold the exit up.
    process.exitCode = code;
    setTimeout(() => process.exit(code), 1000).unref();
  },
  (error: unknown) => {
    console.error(`pgwire-bridge: ${error instanceof Error ? error.message : String(error)}`);
    process.exit(1);
  },
);
