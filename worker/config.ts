import { WINDOW_TO_CLIENT_BYTES } from '../common/flow-control.js';
import { compilePatterns } from './policy/patterns.js';
import { publicKeyShapeProblem, verificationKey } from './policy/jwt-keys.js';
import { canonicalHost, chooseTarget, parseTargets, type Target, type TargetEntry } from './policy/targets.js';
import { MIN_FRAME_LENGTH, NAMEDATALEN, PQ_LARGE_MESSAGE_LIMIT } from './protocol/constants.js';
import { POSTGRES_DEFAULT_ITERATIONS, type IterationRange } from './protocol/scram.js';

/** The Worker's bindings: vars in wrangler.toml or secrets (`wrangler secret put`). */
export interface Env {
  PG_HOST?: string;
  PG_TARGETS?: string;
  PG_PORT?: string;
  PG_TLS?: string;
  FLOW_CONTROL?: string;
  MAX_MESSAGE_BYTES?: string;
  CONNECT_TIMEOUT_MS?: string;
  STARTUP_TIMEOUT_MS?: string;
  IDLE_TIMEOUT_MS?: string;
  MAX_SESSION_MS?: string;
  ALLOWED_ORIGINS?: string;
  ALLOWED_USERS?: string;
  ALLOWED_DATABASES?: string;
  ALLOW_REPLICATION?: string;
  JWT_SECRET?: string;
  JWT_PUBLIC_KEY?: string;
  JWT_JWKS_URL?: string;
  JWT_AUDIENCE?: string;
  JWT_ISSUER?: string;
  JWT_USER_CLAIM?: string;
  JWT_ROLE_CLAIM?: string;
  PG_CREDENTIALS?: string;
  SCRAM_MIN_ITERATIONS?: string;
  SCRAM_MAX_ITERATIONS?: string;
  IDLE_IN_TRANSACTION_TIMEOUT_MS?: string;
  LOGIN_TIMEOUT_MS?: string;
  TOKEN_EXPIRY_GRACE_MS?: string;
  MAX_SESSIONS?: string;
  MAX_LOGINS_IN_PROGRESS?: string;
  ISOLATE_BUDGET_BYTES?: string;
  WINDOW_TO_CLIENT_BYTES?: string;
  STALLED_CLIENT_TIMEOUT_MS?: string;
  /** Workers Analytics Engine dataset for per-session counters, when bound. */
  METRICS?: MetricsDataset;
  /** Workers Rate Limiting binding (`[[ratelimits]]`), checked at every upgrade when bound. */
  RATE_LIMITER?: RateLimiter;
  /** A Hyperdrive binding (`[[hyperdrive]]`): the target, and the credentials the bridge logs in with. */
  HYPERDRIVE?: HyperdriveBinding;
}

/** What the bridge reads of a Hyperdrive binding: where to connect and whom to log in as. */
export interface HyperdriveBinding {
  readonly host: string;
  readonly port: number;
  readonly user: string;
  readonly password: string;
  readonly database: string;
}

/** The one method of a Workers Rate Limiting binding the bridge uses. */
export interface RateLimiter {
  limit(options: { key: string }): Promise<{ success: boolean }>;
}

/** The one method of a Workers Analytics Engine dataset the bridge uses. */
export interface MetricsDataset {
  writeDataPoint(point: { indexes?: string[]; blobs?: string[]; doubles?: number[] }): void;
}

/** How clients prove themselves to the edge: a JWT checked before any TCP connection. */
export interface JwtPolicy {
  /** HS256 shared secret. */
  readonly secret?: string;
  /** RS256/ES256 public key: SPKI PEM or a JWK as JSON. */
  readonly publicKey?: string;
  /** RS256/ES256 keys fetched (and cached) from a JWKS endpoint. */
  readonly jwksUrl?: string;
  readonly audience: string;
  readonly issuer?: string;
  /** A claim whose value the StartupMessage's user must equal. */
  readonly userClaim?: string;
}

export interface BridgeConfig {
  /** The one PostgreSQL server this bridge relays to, when the target is fixed (PG_HOST). */
  readonly host: string;
  readonly port: number;
  /** The servers clients may choose from (PG_TARGETS), when the target is not fixed. */
  readonly targets: readonly TargetEntry[] | null;
  /** `require`: STARTTLS to PostgreSQL, refusing to go on in clear text; `off`: plain TCP. */
  readonly tls: 'require' | 'off';
  /**
   * "require": refuse clients that do not take part in flow control, whose slow reading would
   * otherwise pile PostgreSQL's output up in the Worker's memory. "offer" (default): take part
   * when the client does.
   */
  readonly flowControl: 'offer' | 'require';
  /** Largest client message accepted, counting its 4 length bytes. */
  readonly maxMessageBytes: number;
  readonly connectTimeoutMs: number;
  /** Time from the upgrade to a complete StartupMessage (or CancelRequest). */
  readonly startupTimeoutMs: number;
  /**
   * PostgreSQL said ReadyForQuery (idle, not in a transaction) and the client has sent nothing
   * since, for this long: the session ends, as with idle_session_timeout (0: never).
   */
  readonly idleTimeoutMs: number;
  /** The same inside a transaction (ReadyForQuery `T` or `E`), as idle_in_transaction_session_timeout (0: never). */
  readonly idleInTransactionTimeoutMs: number;
  /** From the StartupMessage to the first ReadyForQuery: authentication may take no longer. */
  readonly loginTimeoutMs: number;
  /** How long a session outlives its token's `exp` (0: it ends when the token expires). */
  readonly tokenExpiryGraceMs: number;
  /** Sessions this isolate serves at once; more are refused with 53300 before any TCP. */
  readonly maxSessions: number;
  /** Sessions of this isolate that have opened TCP and not finished logging in; more are refused with 53300. */
  readonly maxLoginsInProgress: number;
  /**
   * Bytes all sessions of this isolate may hold in flight together (both directions); at the
   * budget, each session takes no more than a small share (64 KiB toward its client).
   */
  readonly isolateBudgetBytes: number;
  /** Result bytes one session may have sent and not had echoed (flow control): its speed against its memory. */
  readonly windowToClientBytes: number;
  /**
   * A session whose client has echoed nothing for this long while it holds more than its share is
   * ended when the isolate is over its budget: it holds memory the others need (0: never).
   */
  readonly stalledClientTimeoutMs: number;
  /** Sessions end after this long (0: never). */
  readonly maxSessionMs: number;
  /** Browser origins allowed to open a session; requests without an Origin header are not browsers. */
  readonly allowedOrigin: (origin: string) => boolean;
  readonly allowedUser: (user: string) => boolean;
  readonly allowedDatabase: (database: string) => boolean;
  readonly allowReplication: boolean;
  readonly jwt: JwtPolicy | null;
  /**
   * Edge-held credentials (PG_CREDENTIALS): database role → its password and the servers it may
   * be used with. When set, the bridge logs in to PostgreSQL itself and clients never see a
   * password; null otherwise.
   */
  readonly credentials: ReadonlyMap<string, EdgeCredential> | null;
  /** The SCRAM iteration counts the bridge hashes with when it logs in; others are refused unhashed. */
  readonly scramIterations: IterationRange;
  /** The token claim that picks the role from `credentials` (JWT_ROLE_CLAIM). */
  readonly roleClaim: string | null;
}

/** A password the bridge holds for one role, and the only servers it is ever sent to (as SCRAM proof). */
export interface EdgeCredential {
  readonly password: string;
  /** Canonical hosts (see canonicalHost) with their ports. */
  readonly targets: readonly Target[];
}

/**
 * SCRAM iteration counts accepted by default: from PostgreSQL's default (a server asking for
 * fewer is weaker than any default install) to a count whose PBKDF2 holds the Worker's thread for
 * about 15 ms (README.md, "Security model", has the measurements).
 */
export const DEFAULT_SCRAM_ITERATIONS: IterationRange = {
  minIterations: POSTGRES_DEFAULT_ITERATIONS,
  maxIterations: 100_000,
};
const MAX_SCRAM_ITERATIONS = 10_000_000;

/**
 * Defaults sized for Cloudflare's 128 MB isolate (the arithmetic is in README.md, "Limits"):
 * sessions at their caps hold at most ISOLATE_BUDGET_BYTES of PostgreSQL bytes together.
 */
export const DEFAULT_MAX_SESSIONS = 128;
export const DEFAULT_MAX_LOGINS_IN_PROGRESS = 32;
export const DEFAULT_ISOLATE_BUDGET_BYTES = 48 * 1024 * 1024;

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid configuration: ${problems.join('; ')}`);
    this.name = 'ConfigError';
  }
}

const parsed = new WeakMap<Env, BridgeConfig>();

/**
 * ALLOWED_DATABASES, or by default every database — but with a Hyperdrive binding only the
 * binding's: its credentials are the bridge's, and a client naming another database would reach
 * it with them (PostgreSQL lets any role connect to any database unless CONNECT was revoked).
 */
function allowedDatabases(env: Env): (database: string) => boolean {
  if (env.ALLOWED_DATABASES !== undefined) return compilePatterns(env.ALLOWED_DATABASES);
  if (env.HYPERDRIVE) {
    const only = env.HYPERDRIVE.database;
    return (database) => database === only;
  }
  return () => true;
}

/** Reads and validates the bindings once per environment object; throws ConfigError listing every problem. */
export function loadConfig(env: Env): BridgeConfig {
  const cached = parsed.get(env);
  if (cached) return cached;
  const problems: string[] = [];

  // With Hyperdrive, the binding is the one target and holds the credentials (edge-held).
  const hyperdrive = env.HYPERDRIVE ?? null;
  if (hyperdrive !== null) {
    for (const name of ['PG_HOST', 'PG_TARGETS', 'PG_PORT', 'PG_CREDENTIALS'] as const) {
      if ((env[name] ?? '').trim() !== '') problems.push(`${name} must not be set with a HYPERDRIVE binding`);
    }
  }
  const host = hyperdrive?.host ?? (env.PG_HOST ?? '').trim();
  const targetList = (env.PG_TARGETS ?? '').trim();
  let targets: TargetEntry[] | null = null;
  if (hyperdrive !== null) {
    if (typeof hyperdrive.host !== 'string' || hyperdrive.host === '') problems.push('HYPERDRIVE has no host');
    if (typeof hyperdrive.database !== 'string' || hyperdrive.database === '')
      problems.push('HYPERDRIVE has no database');
  } else if (host !== '' && targetList !== '') problems.push('set PG_HOST or PG_TARGETS, not both');
  else if (targetList !== '') {
    const parsedTargets = parseTargets(targetList);
    problems.push(...parsedTargets.problems);
    targets = parsedTargets.entries;
  } else if (host === '') problems.push('PG_HOST (one fixed database) or PG_TARGETS (an allowlist) is required');
  else if (/[\s/]/.test(host)) problems.push('PG_HOST must be a host name or IP address');

  const port = hyperdrive?.port ?? integer(env.PG_PORT, 'PG_PORT', 5432, 1, 65535, problems);
  // Workers reach Hyperdrive without TLS; Hyperdrive itself speaks TLS to the database.
  const tls = oneOf(env.PG_TLS, 'PG_TLS', ['require', 'off'], hyperdrive ? 'off' : 'require', problems);
  const flowControl = oneOf(env.FLOW_CONTROL, 'FLOW_CONTROL', ['offer', 'require'], 'require', problems);
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
  const idleTimeoutMs = integer(env.IDLE_TIMEOUT_MS, 'IDLE_TIMEOUT_MS', 900_000, 0, 86_400_000, problems);
  const maxSessionMs = integer(env.MAX_SESSION_MS, 'MAX_SESSION_MS', 86_400_000, 0, 604_800_000, problems);
  const idleInTransactionTimeoutMs = integer(
    env.IDLE_IN_TRANSACTION_TIMEOUT_MS,
    'IDLE_IN_TRANSACTION_TIMEOUT_MS',
    300_000,
    0,
    86_400_000,
    problems,
  );
  const loginTimeoutMs = integer(env.LOGIN_TIMEOUT_MS, 'LOGIN_TIMEOUT_MS', 15_000, 1, 600_000, problems);
  const tokenExpiryGraceMs = integer(env.TOKEN_EXPIRY_GRACE_MS, 'TOKEN_EXPIRY_GRACE_MS', 0, 0, 86_400_000, problems);
  const maxSessions = integer(env.MAX_SESSIONS, 'MAX_SESSIONS', DEFAULT_MAX_SESSIONS, 1, 100_000, problems);
  const maxLoginsInProgress = integer(
    env.MAX_LOGINS_IN_PROGRESS,
    'MAX_LOGINS_IN_PROGRESS',
    DEFAULT_MAX_LOGINS_IN_PROGRESS,
    1,
    100_000,
    problems,
  );
  const windowToClientBytes = integer(
    env.WINDOW_TO_CLIENT_BYTES,
    'WINDOW_TO_CLIENT_BYTES',
    WINDOW_TO_CLIENT_BYTES,
    256 * 1024,
    64 * 1024 * 1024,
    problems,
  );
  const stalledClientTimeoutMs = integer(
    env.STALLED_CLIENT_TIMEOUT_MS,
    'STALLED_CLIENT_TIMEOUT_MS',
    60_000,
    0,
    86_400_000,
    problems,
  );
  const isolateBudgetBytes = integer(
    env.ISOLATE_BUDGET_BYTES,
    'ISOLATE_BUDGET_BYTES',
    DEFAULT_ISOLATE_BUDGET_BYTES,
    1024 * 1024,
    1024 * 1024 * 1024,
    problems,
  );

  const origins = (env.ALLOWED_ORIGINS ?? '').trim();
  for (const origin of origins.split(',').map((o) => o.trim())) {
    if (origin !== '' && origin !== '*' && !/^https?:\/\/[^/\s]+$/.test(origin)) {
      problems.push(`ALLOWED_ORIGINS: "${origin}" is not an origin like https://app.example.com`);
    }
  }
  const replication = oneOf(env.ALLOW_REPLICATION?.trim(), 'ALLOW_REPLICATION', ['true', 'false'], 'false', problems);

  let jwt: JwtPolicy | null = null;
  const keys = [env.JWT_SECRET, env.JWT_PUBLIC_KEY, env.JWT_JWKS_URL].filter((k) => (k ?? '').trim() !== '');
  if (keys.length > 1) problems.push('set only one of JWT_SECRET, JWT_PUBLIC_KEY, JWT_JWKS_URL');
  if (keys.length > 0) {
    const audience = (env.JWT_AUDIENCE ?? '').trim();
    if (audience === '') problems.push('JWT_AUDIENCE is required when tokens are checked');
    if (env.JWT_SECRET && env.JWT_SECRET.length < 32) problems.push('JWT_SECRET must be at least 32 characters');
    if (env.JWT_JWKS_URL && !httpUrl(env.JWT_JWKS_URL)) problems.push('JWT_JWKS_URL must be an http(s) URL');
    const keyProblem = env.JWT_PUBLIC_KEY ? publicKeyShapeProblem(env.JWT_PUBLIC_KEY) : null;
    if (keyProblem) problems.push(keyProblem);
    jwt = {
      ...(env.JWT_SECRET && { secret: env.JWT_SECRET }),
      ...(env.JWT_PUBLIC_KEY && { publicKey: env.JWT_PUBLIC_KEY }),
      ...(env.JWT_JWKS_URL && { jwksUrl: env.JWT_JWKS_URL }),
      audience,
      ...(env.JWT_ISSUER && { issuer: env.JWT_ISSUER }),
      ...(env.JWT_USER_CLAIM && { userClaim: env.JWT_USER_CLAIM }),
    };
  }

  // Blank is no claim, for the check below as for the policy: else every token gets the first role.
  const roleClaim = env.JWT_ROLE_CLAIM?.trim() || null;
  const fixedTarget = targets === null ? { host: canonicalHost(host) ?? host.toLowerCase(), port } : null;
  const credentials =
    hyperdrive !== null && fixedTarget !== null
      ? new Map([[hyperdrive.user, { password: hyperdrive.password, targets: [fixedTarget] }]])
      : parseCredentials(env.PG_CREDENTIALS, targets, fixedTarget, problems);
  if (credentials !== null) {
    const source = hyperdrive ? 'HYPERDRIVE' : 'PG_CREDENTIALS';
    if (jwt === null) problems.push(`${source} needs token checks (JWT_SECRET, JWT_PUBLIC_KEY or JWT_JWKS_URL)`);
    if (credentials.size > 1 && roleClaim === null) {
      problems.push('JWT_ROLE_CLAIM is required when PG_CREDENTIALS holds more than one role');
    }
  }
  const minIterations = integer(
    env.SCRAM_MIN_ITERATIONS,
    'SCRAM_MIN_ITERATIONS',
    DEFAULT_SCRAM_ITERATIONS.minIterations,
    1,
    MAX_SCRAM_ITERATIONS,
    problems,
  );
  const maxIterations = integer(
    env.SCRAM_MAX_ITERATIONS,
    'SCRAM_MAX_ITERATIONS',
    DEFAULT_SCRAM_ITERATIONS.maxIterations,
    1,
    MAX_SCRAM_ITERATIONS,
    problems,
  );
  if (minIterations > maxIterations) problems.push('SCRAM_MIN_ITERATIONS must not be above SCRAM_MAX_ITERATIONS');

  if (problems.length > 0) throw new ConfigError(problems);
  const config: BridgeConfig = {
    host,
    port,
    targets,
    tls,
    flowControl,
    maxMessageBytes,
    connectTimeoutMs,
    startupTimeoutMs,
    idleTimeoutMs,
    idleInTransactionTimeoutMs,
    loginTimeoutMs,
    tokenExpiryGraceMs,
    maxSessions,
    maxLoginsInProgress,
    isolateBudgetBytes,
    windowToClientBytes,
    stalledClientTimeoutMs,
    maxSessionMs,
    allowedOrigin: compilePatterns(origins),
    allowedUser: compilePatterns(env.ALLOWED_USERS ?? '*'),
    allowedDatabase: allowedDatabases(env),
    allowReplication: replication === 'true',
    jwt,
    credentials,
    scramIterations: { minIterations, maxIterations },
    roleClaim,
  };
  parsed.set(env, config);
  return config;
}

const CREDENTIALS_SHAPE =
  'PG_CREDENTIALS must be a JSON object like {"role": {"password": "…", "targets": ["host:port"]}}';

/**
 * PG_CREDENTIALS: each role's password and the targets it may be sent to. With a fixed PG_HOST,
 * a role may give just its password (the older shape) and is bound to that host; with PG_TARGETS,
 * every role must name its targets, each one the allowlist admits.
 */
function parseCredentials(
  raw: string | undefined,
  targets: readonly TargetEntry[] | null,
  fixedTarget: Target | null,
  problems: string[],
): Map<string, EdgeCredential> | null {
  if ((raw ?? '').trim() === '') return null;
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw!);
  } catch {
    parsed = null;
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed) || Object.keys(parsed).length === 0) {
    problems.push(CREDENTIALS_SHAPE);
    return null;
  }
  const credentials = new Map<string, EdgeCredential>();
  for (const [role, entry] of Object.entries(parsed)) {
    const where = `PG_CREDENTIALS: role "${role}"`;
    const given: { password?: unknown; targets?: unknown } =
      typeof entry === 'string' ? { password: entry } : typeof entry === 'object' && entry !== null ? entry : {};
    const unknownKeys = Object.keys(given).filter((key) => key !== 'password' && key !== 'targets');
    const { password } = given;
    if (role === '' || typeof password !== 'string' || password === '' || unknownKeys.length > 0) {
      problems.push(CREDENTIALS_SHAPE);
      continue;
    }
    if (new TextEncoder().encode(role).length >= NAMEDATALEN) {
      problems.push(`${where}: a role name has at most ${NAMEDATALEN - 1} bytes`);
      continue;
    }
    // PostgreSQL hashes the password's UTF-8 bytes; a lone surrogate or NUL has none it could match.
    if (/[\uD800-\uDFFF\0]/u.test(password)) {
      problems.push(`${where}: the password must be text without NUL characters`);
      continue;
    }
    const bound = credentialTargets(role, given.targets, targets, fixedTarget, problems);
    if (bound) credentials.set(role, { password, targets: bound });
  }
  return credentials;
}

function credentialTargets(
  role: string,
  given: unknown,
  targets: readonly TargetEntry[] | null,
  fixedTarget: Target | null,
  problems: string[],
): Target[] | null {
  const where = `PG_CREDENTIALS: role "${role}"`;
  if (given === undefined) {
    if (fixedTarget) return [fixedTarget];
    problems.push(
      `${where} must name its targets when PG_TARGETS is set: {"${role}": {"password": "…", "targets": ["host:port"]}}`,
    );
    return null;
  }
  if (!Array.isArray(given) || given.length === 0 || !given.every((t) => typeof t === 'string')) {
    problems.push(`${where}: "targets" must be a non-empty list of "host:port"`);
    return null;
  }
  const bound: Target[] = [];
  for (const text of given as string[]) {
    const match = /^(.+):(\d{1,5})$/.exec(text.trim());
    const host = match ? canonicalHost(match[1]!) : null;
    const port = Number(match?.[2]);
    if (!match || host === null || host.startsWith('*') || port < 1 || port > 65535) {
      problems.push(`${where}: target "${text}" is not host:port (without wildcards)`);
      continue;
    }
    const reachable = targets
      ? typeof chooseTarget(targets, host, String(port)) !== 'string'
      : fixedTarget!.host === host && fixedTarget!.port === port;
    if (!reachable) {
      problems.push(`${where}: target "${text}" is not one this bridge connects to (PG_HOST or PG_TARGETS)`);
      continue;
    }
    bound.push({ host, port });
  }
  return bound.length === given.length ? bound : null;
}

function httpUrl(text: string): boolean {
  try {
    const url = new URL(text);
    return (url.protocol === 'https:' || url.protocol === 'http:') && url.hostname !== '';
  } catch {
    return false;
  }
}

const verified = new WeakMap<Env, Promise<BridgeConfig>>();

/**
 * loadConfig, and then the token key imported as it will be used (JWT_PUBLIC_KEY with WebCrypto),
 * once per environment object. Rejects with ConfigError for every problem loadConfig finds and for
 * a key that cannot be imported, so a bad key shows at the first upgrade instead of as a 401 for
 * every token.
 */
export function loadConfigAsync(env: Env): Promise<BridgeConfig> {
  let config = verified.get(env);
  if (!config) {
    config = (async () => {
      const loaded = loadConfig(env);
      if (loaded.jwt) {
        await verificationKey(loaded.jwt).catch((error: unknown) => {
          throw new ConfigError([error instanceof Error ? error.message : String(error)]);
        });
      }
      return loaded;
    })();
    verified.set(env, config);
  }
  return config;
}

/** One of `allowed`, `fallback` when unset; anything else is a problem. */
function oneOf<T extends string>(
  raw: string | undefined,
  name: string,
  allowed: readonly T[],
  fallback: T,
  problems: string[],
): T {
  if (raw === undefined) return fallback;
  if ((allowed as readonly string[]).includes(raw)) return raw as T;
  problems.push(`${name} must be ${allowed.map((value) => `"${value}"`).join(' or ')}`);
  return fallback;
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
