import { MIN_FRAME_LENGTH, PQ_LARGE_MESSAGE_LIMIT } from './protocol/constants.js';

/** The Worker's bindings: vars in wrangler.toml or secrets (`wrangler secret put`). */
export interface Env {
  PG_HOST?: string;
  PG_PORT?: string;
  PG_TLS?: string;
  MAX_MESSAGE_BYTES?: string;
  CONNECT_TIMEOUT_MS?: string;
  STARTUP_TIMEOUT_MS?: string;
}

export interface BridgeConfig {
  /** The one PostgreSQL server this bridge relays to. */
  readonly host: string;
  readonly port: number;
  /** `require`: STARTTLS to PostgreSQL, refusing to go on in clear text; `off`: plain TCP. */
  readonly tls: 'require' | 'off';
  /** Largest client message accepted, counting its 4 length bytes. */
  readonly maxMessageBytes: number;
  readonly connectTimeoutMs: number;
  /** Time from the upgrade to a complete StartupMessage (or CancelRequest). */
  readonly startupTimeoutMs: number;
}

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid configuration: ${problems.join('; ')}`);
    this.name = 'ConfigError';
  }
}

const parsed = new WeakMap<Env, BridgeConfig>();

/** Reads and validates the bindings once per environment object; throws ConfigError listing every problem. */
export function loadConfig(env: Env): BridgeConfig {
  const cached = parsed.get(env);
  if (cached) return cached;
  const problems: string[] = [];

  const host = (env.PG_HOST ?? '').trim();
  if (host === '') problems.push('PG_HOST is required');
  else if (/[\s/]/.test(host)) problems.push('PG_HOST must be a host name or IP address');

  const port = integer(env.PG_PORT, 'PG_PORT', 5432, 1, 65535, problems);
  const tls = env.PG_TLS ?? 'require';
  if (tls !== 'require' && tls !== 'off') problems.push('PG_TLS must be "require" or "off"');
  const maxMessageBytes = integer(
    env.MAX_MESSAGE_BYTES,
    'MAX_MESSAGE_BYTES',
    PQ_LARGE_MESSAGE_LIMIT,
    MIN_FRAME_LENGTH,
    PQ_LARGE_MESSAGE_LIMIT,
    problems,
  );
  const connectTimeoutMs = integer(env.CONNECT_TIMEOUT_MS, 'CONNECT_TIMEOUT_MS', 10000, 1, 600000, problems);
  const startupTimeoutMs = integer(env.STARTUP_TIMEOUT_MS, 'STARTUP_TIMEOUT_MS', 10000, 1, 600000, problems);

  if (problems.length > 0) throw new ConfigError(problems);
  const config: BridgeConfig = {
    host,
    port,
    tls: tls as BridgeConfig['tls'],
    maxMessageBytes,
    connectTimeoutMs,
    startupTimeoutMs,
  };
  parsed.set(env, config);
  return config;
}

function integer(
  raw: string | undefined,
  name: string,
  fallback: number,
  min: number,
  max: number,
  problems: string[],
): number {
  if (raw === undefined || raw.trim() === '') return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < min || value > max) {
    problems.push(`${name} must be an integer from ${min} to ${max}`);
    return fallback;
  }
  return value;
}
