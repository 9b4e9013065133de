import type pg from 'pg';
import WebSocket from 'ws';
import { FLOW_CONTROL_PROTOCOL } from '../../common/subprotocols.js';
import { startBridge, type BridgeOptions, type RunningBridge } from '../../dev/bridge.js';
import { eventually } from './clients.js';

const SESSION = 'pgwire-bridge.session';

/** One structured log line of the bridge: `pgwire-bridge.session` or `pgwire-bridge.refused`. */
export type LogEvent = Record<string, unknown>;

/** Everything a bridge's workerd wrote to stdout and stderr, and the structured lines in it. */
export class BridgeLog {
  private readonly chunks: string[] = [];

  readonly write = (chunk: string): void => {
    this.chunks.push(chunk);
  };

  get text(): string {
    return this.chunks.join('');
  }

  /** The JSON lines of `event`, in the order they were written. */
  events(event: string): LogEvent[] {
    return this.text
      .split('\n')
      .filter((line) => line.includes(`"event":"${event}"`))
      .map((line) => JSON.parse(line.slice(line.indexOf('{'))) as LogEvent);
  }

  /**
   * The first line of `event` that `match` accepts, after the first `after` lines of that event,
   * waiting for it a while; throws if none comes.
   */
  async find(event: string, match: (line: LogEvent) => boolean, after = 0, timeoutMs = 3000): Promise<LogEvent> {
    const lines = await eventually(
      async () => this.events(event).slice(after).filter(match),
      (found) => found.length > 0,
      timeoutMs,
    );
    if (!lines[0]) throw new Error(`no ${event} line as expected in the log:\n${this.text}`);
    return lines[0];
  }

  /** How many sessions have been logged so far: give it to `session` to look only at later ones. */
  get sessionCount(): number {
    return this.events(SESSION).length;
  }

  /** The session line that ended with `closeReason` (a BridgeError code), waiting for it a while. */
  session(closeReason: string, after = 0): Promise<LogEvent> {
    return this.find(SESSION, (line) => line.closeReason === closeReason, after);
  }
}

/** A bridge whose log is kept for the test to read. */
export async function startLoggedBridge(
  options: BridgeOptions,
): Promise<{ readonly bridge: RunningBridge; readonly log: BridgeLog }> {
  const log = new BridgeLog();
  const bridge = await startBridge({ ...options, log: log.write });
  return { bridge, log };
}

/** A pg client as its user sees it: every error it raised, and when its connection ended. */
export interface WatchedClient {
  readonly client: pg.Client;
  readonly errors: Array<Error & { code?: string }>;
  /** Resolves with Date.now() at the connection's end. */
  readonly ended: Promise<number>;
}

/** Listens to `client` for errors outside queries and for its end, before it connects. */
export function watchClient(client: pg.Client): WatchedClient {
  const errors: Array<Error & { code?: string }> = [];
  client.on('error', (error) => errors.push(error));
  const ended = new Promise<number>((resolve) => client.once('end', () => resolve(Date.now())));
  return { client, errors, ended };
}

/** The outcome of a query: its rows, or the error it was rejected with. */
export function settle<T>(promise: Promise<T>): Promise<T | (Error & { code?: string })> {
  return promise.catch((error: Error & { code?: string }) => error);
}

export interface UpgradeAnswer {
  /** 101 when the WebSocket opened, else the HTTP status of the refusal. */
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
}

/** One WebSocket upgrade, closed again at once when it succeeds. */
export function upgrade(
  url: string,
  options: { origin?: string; protocols?: string[]; headers?: Record<string, string> } = {},
): Promise<UpgradeAnswer> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, options.protocols ?? [FLOW_CONTROL_PROTOCOL], {
      perMessageDeflate: false,
      ...(options.origin && { origin: options.origin }),
      ...(options.headers && { headers: options.headers }),
    });
    ws.on('upgrade', (res) => {
      ws.once('open', () => {
        ws.close();
        resolve({ status: 101, headers: res.headers });
      });
    });
    ws.on('unexpected-response', (_req, res) => {
      res.resume();
      resolve({ status: res.statusCode ?? 0, headers: res.headers });
    });
    ws.on('error', reject);
  });
}
