/** The command line of `pgwire-bridge tunnel`. */

export const USAGE = `usage: pgwire-bridge tunnel <wss://bridge/v1> [--listen host:port] [--token token]

  --listen  where to accept PostgreSQL clients (default 127.0.0.1:6543; port 0 picks one)
  --token   a token for a bridge that checks them (or set PGWIRE_BRIDGE_TOKEN)`;

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
    const [flag, inline] = arg.startsWith('--') && arg.includes('=') ? arg.split(/=(.*)/s, 2) : [arg, undefined];
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
