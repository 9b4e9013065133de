import { SignJWT } from 'jose';
import pg from 'pg';
import postgresJs from 'postgres';
import WebSocket from 'ws';
import { afterAll, beforeAll, inject } from 'vitest';
import { Socket, type SocketOptions } from 'pgwire-bridge/client';
import { FLOW_CONTROL_PROTOCOL } from '../../common/subprotocols.js';
import { startBridge, type RunningBridge } from '../../dev/bridge.js';
import type { PostgresInfo } from '../../dev/postgres.js';

export const postgres = (): PostgresInfo => inject('postgres');

/**
 * For a suite: a TLS bridge started before the suite's tests and stopped after them. Read the
 * field inside tests and hooks.
 */
export function tlsBridgeForSuite(): { readonly bridge: RunningBridge } {
  const suite = {} as { bridge: RunningBridge };
  beforeAll(async () => {
    suite.bridge = await startTlsBridge();
  });
  afterAll(async () => {
    await suite.bridge?.stop();
  });
  return suite;
}

/**
 * For a suite: a TLS bridge, and a direct connection that watches the server, opened before the
 * suite's tests and closed after them. Read the fields inside tests and hooks.
 */
export function bridgeAndWatcher(): { readonly bridge: RunningBridge; readonly watcher: pg.Client } {
  const suite = tlsBridgeForSuite() as { bridge: RunningBridge; watcher: pg.Client };
  beforeAll(async () => {
    suite.watcher = directClient();
    await suite.watcher.connect();
  });
  afterAll(async () => {
    await suite.watcher?.end();
  });
  return suite;
}

/**
 * Where startTlsBridge()'s bridge sends its sessions. The Hyperdrive suites set `viaHyperdrive`
 * before they load a driver suite, whose cases then run through a local Hyperdrive binding with
 * the binding's (edge-held) credentials, the clients presenting `token`.
 */
export const bridgeTarget: { viaHyperdrive: boolean; token?: string } = { viaHyperdrive: false };

/** The bridge as deployed: TLS to the shared test PostgreSQL, whose CA workerd is told to trust. */
export async function startTlsBridge(): Promise<RunningBridge> {
  const db = postgres();
  if (bridgeTarget.viaHyperdrive) {
    const secret = 'hyperdrive-suite-secret-of-32-characters!';
    bridgeTarget.token = await new SignJWT({})
      .setProtectedHeader({ alg: 'HS256' })
      .setAudience('pgwire-bridge')
      .setSubject('hyperdrive-suite')
      .setExpirationTime('1h')
      .sign(new TextEncoder().encode(secret));
    // Miniflare's local Hyperdrive speaks TLS to PostgreSQL, as Hyperdrive does to an origin.
    const login = `${encodeURIComponent(db.user)}:${encodeURIComponent(db.password)}`;
    return startBridge({
      bindings: { JWT_SECRET: secret, JWT_AUDIENCE: 'pgwire-bridge' },
      hyperdrive: `postgresql://${login}@${db.host}:${db.port}/${db.database}?sslmode=require`,
    });
  }
  return startBridge({
    bindings: { PG_HOST: db.host, PG_PORT: String(db.port), PG_TLS: 'require' },
    trustedCaPem: db.caPem,
  });
}

/** An unmodified pg client whose socket is the shim, talking to the bridge at `url`. */
export function bridgeClient(
  url: string,
  config: pg.ClientConfig = {},
  socket: Partial<SocketOptions> = {},
): pg.Client {
  const db = postgres();
  return new pg.Client({
    user: db.user,
    password: db.password,
    database: db.database,
    ...config,
    stream: () => new Socket({ url, WebSocket: WebSocket as never, ...viaToken(), ...socket }) as never,
  });
}

/**
 * Unmodified postgres.js whose socket is the shim, talking to the bridge at `url`. postgres.js
 * starts talking at once, so the socket must take writes before it is open; its type
 * declarations leave the `socket` option out.
 */
export function bridgePostgresJs(
  url: string,
  options: postgresJs.Options<{}> | Record<string, unknown> = {},
): postgresJs.Sql {
  const db = postgres();
  const socket = { socket: () => new Socket({ url, WebSocket: WebSocket as never, ...viaToken() }).connect() };
  return postgresJs({
    user: db.user,
    pass: db.password,
    database: db.database,
    onnotice: () => {},
    ...socket,
    ...options,
  } as postgresJs.Options<{}>);
}

/** The token a bridge to Hyperdrive asks for, when startTlsBridge() started one. */
function viaToken(): { token?: string } {
  return bridgeTarget.viaHyperdrive && bridgeTarget.token ? { token: bridgeTarget.token } : {};
}

/** A pg client on direct TCP (with TLS), for comparisons and for watching the server. */
export function directClient(config: pg.ClientConfig = {}): pg.Client {
  const db = postgres();
  return new pg.Client({
    host: db.host,
    port: db.port,
    user: db.user,
    password: db.password,
    database: db.database,
    ssl: { ca: db.caPem },
    ...config,
  });
}

export interface RawSession {
  /** Every binary byte the bridge sent, in order. */
  received: Uint8Array;
  /** The flow-control text messages the bridge sent. */
  texts: string[];
  closeCode: number;
  closeReason: string;
}

/**
 * Sends each chunk as one WebSocket message (strings as text) and collects what comes back until
 * the bridge closes. It offers flow control, as bridges require by default, and never echoes.
 */
export async function rawSession(
  url: string,
  chunks: Array<Uint8Array | string>,
  timeoutMs = 5000,
  protocols: string[] = [FLOW_CONTROL_PROTOCOL],
): Promise<RawSession> {
  const ws = new WebSocket(url, protocols, { perMessageDeflate: false });
  const received: Buffer[] = [];
  const texts: string[] = [];
  ws.on('message', (data: Buffer, isBinary: boolean) => {
    if (isBinary) received.push(data);
    else texts.push(data.toString());
  });
  await new Promise((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('error', reject);
  });
  for (const chunk of chunks) ws.send(chunk, { binary: typeof chunk !== 'string' });
  const [closeCode, closeReason] = await new Promise<[number, string]>((resolve, reject) => {
    const timer = setTimeout(() => {
      ws.terminate();
      reject(new Error(`the bridge did not close within ${timeoutMs} ms`));
    }, timeoutMs);
    ws.once('close', (code: number, reason: Buffer) => {
      clearTimeout(timer);
      resolve([code, reason.toString()]);
    });
  });
  return { received: new Uint8Array(Buffer.concat(received)), texts, closeCode, closeReason };
}

/** Polls until `check` holds or the time is up; returns the last value seen. */
export async function eventually<T>(
  probe: () => Promise<T>,
  check: (value: T) => boolean,
  timeoutMs = 2000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let value = await probe();
  while (!check(value) && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 25));
    value = await probe();
  }
  return value;
}

/** Backend process ids of client connections (not this one) that PostgreSQL still has. */
export async function backendPids(watcher: pg.Client): Promise<number[]> {
  const result = await watcher.query<{ pid: number }>(
    "SELECT pid FROM pg_stat_activity WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()",
  );
  return result.rows.map((row) => row.pid);
}

/** Milliseconds until PostgreSQL no longer lists backend `pid`; throws if it is still there after `timeoutMs`. */
export async function msUntilBackendGone(watcher: pg.Client, pid: number, timeoutMs = 2000): Promise<number> {
  const started = Date.now();
  const pids = await eventually(
    () => backendPids(watcher),
    (list) => !list.includes(pid),
    timeoutMs,
  );
  if (pids.includes(pid)) throw new Error(`backend ${pid} still there after ${timeoutMs} ms`);
  return Date.now() - started;
}
