/**
 * Hostile clients for the bounds tests and `npm run soak`: each one attacks one of the bridge's
 * memory or connection bounds the way a real attacker could, over a plain `ws` WebSocket with no
 * help from the client socket, while workerd's memory is read from outside (/proc).
 * Independent of the bridge's code: wire bytes come from wire.ts, SCRAM from pg's own module.
 */
import { createRequire } from 'node:module';
import { createServer, type Socket as TcpSocket } from 'node:net';
import WebSocket from 'ws';
import { WINDOW_TO_SERVER_BYTES } from '../../common/flow-control.js';
import { FLOW_CONTROL_PROTOCOL } from '../../common/subprotocols.js';
import { residentBytes } from '../../dev/bridge.js';
import { listenOnLoopback } from './loopback.js';
import type { RecordedConnection } from './recording-proxy.js';
import { Bytes, errorFields, message, query, readMessages, startupMessage, type BackendMessage } from './wire.js';

/** pg's SCRAM-SHA-256 client steps (pg/lib/crypto/sasl.js), which pg's types leave out. */
interface ScramSession {
  mechanism: string;
  response: string;
}
const scram = createRequire(import.meta.url)('pg/lib/crypto/sasl.js') as {
  startSession(mechanisms: string[]): ScramSession;
  continueSession(session: ScramSession, password: string, serverData: string): Promise<void>;
};

export interface Login {
  user: string;
  password: string;
  database: string;
}

export interface HostileOptions {
  /** Offer flow control (`pgwire-bridge.v2`); default true. */
  flowControl?: boolean;
  /** Sent as CF-Connecting-IP, which Cloudflare sets and Miniflare passes on as the client gives it. */
  ip?: string;
  /** Echo each of the bridge's marks the moment it arrives, whatever was consumed; default false. */
  echoMarks?: boolean;
}

/** How the bridge ended a session: its close code and reason, and the FATAL's SQLSTATE when one came first. */
export interface Ending {
  code: number;
  reason: string;
  sqlState: string | null;
}

/** The bridge's answer to an upgrade: an open client, or the HTTP status it refused with. */
export type Upgrade = { status: 101; client: HostileClient } | { status: number; client: null };

const MiB = 1024 * 1024;

/** Largest amount `pump` lets `ws` buffer before it waits for the socket to take it. */
const PUMP_BUFFER_BYTES = 8 * 1024 * 1024;

/**
 * A WebSocket to the bridge that does only what an attacker needs: log in (startup and SCRAM),
 * send any bytes or text, echo marks or not, stop its TCP reads. Once `discard()` is called it
 * only counts what arrives, so a test can ask for hundreds of megabytes without holding them.
 */
export class HostileClient {
  /** Binary bytes the bridge sent. */
  received = 0;
  /** Binary bytes this client sent. */
  sent = 0;
  /** Marks the bridge sent. */
  marks = 0;
  /** Binary bytes before the last mark echoed: what the bridge counts as proven received. */
  acknowledged = 0;
  /** The backend's process id, from BackendKeyData at login. */
  processId = 0;
  /** The bridge's mark ids, in order, when not echoed at once. */
  readonly unechoed: string[] = [];
  readonly ended: Promise<Ending>;
  private pending: Buffer = Buffer.alloc(0);
  /** `received` when the newest mark arrived: the bytes it covers. */
  private newestMarkAt = 0;
  private keep = true;
  private lastBinary: Buffer = Buffer.alloc(0);
  private readonly messages: BackendMessage[] = [];
  private arrived: () => void = () => {};

  private constructor(
    readonly ws: WebSocket,
    private echoMarks: boolean,
  ) {
    ws.on('message', (data: Buffer, isBinary: boolean) => (isBinary ? this.onBinary(data) : this.onText(String(data))));
    ws.on('error', () => {});
    this.ended = new Promise((resolve) =>
      ws.once('close', (code: number, reason: Buffer) => {
        resolve({ code, reason: reason.toString(), sqlState: this.fatalSqlState() });
        this.arrived();
      }),
    );
  }

  /** Upgrades to the bridge at `url`; a refused upgrade gives its HTTP status. */
  static upgrade(url: string, options: HostileOptions = {}): Promise<Upgrade> {
    const protocols = options.flowControl === false ? [] : [FLOW_CONTROL_PROTOCOL];
    const headers = options.ip ? { 'CF-Connecting-IP': options.ip } : {};
    const ws = new WebSocket(url, protocols, { perMessageDeflate: false, headers });
    const client = new HostileClient(ws, options.echoMarks ?? false);
    return new Promise((resolve, reject) => {
      ws.once('open', () => resolve({ status: 101, client }));
      ws.once('unexpected-response', (_request, response) => {
        response.resume();
        ws.terminate();
        resolve({ status: response.statusCode ?? 0, client: null });
      });
      ws.once('error', reject);
    });
  }

  /** Upgrades, or throws when the bridge refuses. */
  static async open(url: string, options: HostileOptions = {}): Promise<HostileClient> {
    const upgrade = await HostileClient.upgrade(url, options);
    if (!upgrade.client) throw new Error(`upgrade refused with HTTP ${upgrade.status}`);
    return upgrade.client;
  }

  /** Sends a StartupMessage and logs in with SCRAM-SHA-256, up to ReadyForQuery. */
  async login(login: Login, options: { sslRequestFirst?: boolean } = {}): Promise<void> {
    if (options.sslRequestFirst) {
      this.send(new Bytes().int32(8).int16(1234).int16(5679).build());
      const answer = await this.bytes(1);
      if (answer[0] !== 0x4e) throw new Error(`SSLRequest answered with ${answer[0]}, not N`);
    }
    this.send(startupMessage({ user: login.user, database: login.database }));
    let session: ScramSession | null = null;
    for (;;) {
      const next = await this.next();
      if (next.type === 'E') throw new Error(`login refused: ${errorFields(next.body).C}`);
      if (next.type === 'Z') return;
      if (next.type === 'K') this.processId = Buffer.from(next.body).readInt32BE(0);
      if (next.type !== 'R') continue;
      const body = Buffer.from(next.body);
      const request = body.readInt32BE(0);
      if (request === 10) {
        const mechanisms = body.subarray(4).toString().split('\0').filter(Boolean);
        session = scram.startSession(mechanisms);
        const first = Buffer.from(session.response);
        this.send(message('p', new Bytes().cstring(session.mechanism).int32(first.length).raw(first).build()));
      } else if (request === 11 && session) {
        await scram.continueSession(session, login.password, body.subarray(4).toString());
        this.send(message('p', new Uint8Array(Buffer.from(session.response))));
      }
    }
  }

  /** Sends `bytes` as one binary message. */
  send(bytes: Uint8Array): void {
    this.sent += bytes.length;
    this.ws.send(bytes);
  }

  /** Sends a text message (flow control's, or not). */
  text(text: string): void {
    this.ws.send(text);
  }

  /** The next whole backend message. */
  async next(timeoutMs = 5000): Promise<BackendMessage> {
    const deadline = Date.now() + timeoutMs;
    while (this.messages.length === 0) {
      if (this.ws.readyState >= WebSocket.CLOSING) throw new Error('closed while waiting for a message');
      if (Date.now() >= deadline) throw new Error('no message in time');
      await this.arrival(deadline);
    }
    return this.messages.shift()!;
  }

  /** From now on received bytes are only counted, never held or read. */
  discard(): void {
    this.keep = false;
    this.pending = Buffer.alloc(0);
    this.messages.length = 0;
  }

  /**
   * Sends `chunk` again and again, as fast as the WebSocket takes it, until `limit` bytes went out
   * or the bridge closed; returns the bytes sent. A `deaf` sender lets its event loop turn only
   * when `ws` holds PUMP_BUFFER_BYTES, so it reads the bridge's close late and sends on meanwhile.
   */
  async pump(chunk: Uint8Array, limit: number, options: { deaf?: boolean } = {}): Promise<number> {
    let pumped = 0;
    while (pumped < limit && this.ws.readyState === WebSocket.OPEN) {
      this.sent += chunk.length;
      pumped += chunk.length;
      if (this.ws.bufferedAmount >= PUMP_BUFFER_BYTES) await new Promise((resolve) => this.ws.send(chunk, resolve));
      else if (options.deaf) this.ws.send(chunk);
      else await new Promise((resolve) => setImmediate(resolve, this.ws.send(chunk)));
    }
    return pumped;
  }

  /** From now on marks are kept, not echoed: the client goes on reading and proves nothing more. */
  stopEchoing(): void {
    this.echoMarks = false;
  }

  /** Stops reading from TCP: bytes and marks pile up in the kernel and the bridge's send queue. */
  pauseTcp(): void {
    this.tcp.pause();
  }

  resumeTcp(): void {
    this.tcp.resume();
  }

  /** Echoes every mark held back so far, as a client that caught up would. */
  echoHeldMarks(): void {
    const held = this.unechoed.splice(0);
    for (const id of held) this.text(`a${id}`);
    if (held.length > 0) this.acknowledged = this.newestMarkAt;
  }

  close(): void {
    this.ws.terminate();
  }

  private get tcp(): TcpSocket {
    return (this.ws as unknown as { _socket: TcpSocket })._socket;
  }

  private onBinary(data: Buffer): void {
    this.received += data.length;
    this.lastBinary = data;
    if (!this.keep) return;
    this.pending = Buffer.concat([this.pending, data]);
    while (this.pending.length >= 5 && this.pending.length >= 1 + this.pending.readUInt32BE(1)) {
      const length = 1 + this.pending.readUInt32BE(1);
      this.messages.push(...readMessages(this.pending.subarray(0, length)));
      this.pending = this.pending.subarray(length);
    }
    this.arrived();
  }

  private onText(text: string): void {
    if (!text.startsWith('m')) return;
    this.marks += 1;
    this.newestMarkAt = this.received;
    if (this.echoMarks) {
      this.text(`a${text.slice(1)}`);
      this.acknowledged = this.received;
    } else this.unechoed.push(text.slice(1));
  }

  /** Exactly `count` raw bytes, read before any message framing (the answer to SSLRequest). */
  private async bytes(count: number): Promise<Buffer> {
    const deadline = Date.now() + 5000;
    while (this.pending.length < count) await this.arrival(deadline);
    const head = this.pending.subarray(0, count);
    this.pending = this.pending.subarray(count);
    return head;
  }

  private arrival(deadline: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, Math.max(0, deadline - Date.now()));
      this.arrived = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }

  /** The SQLSTATE of the FATAL the bridge sent last, if its last binary message was one. */
  private fatalSqlState(): string | null {
    try {
      const last = readMessages(this.lastBinary).at(-1);
      return last?.type === 'E' ? (errorFields(last.body).C ?? null) : null;
    } catch {
      return null;
    }
  }
}

/** A Query message header claiming `length` bytes of SQL text; the text is to follow in other messages. */
export function queryHeader(length: number): Uint8Array {
  return new Bytes()
    .byte('Q'.charCodeAt(0))
    .int32(length + 4)
    .build();
}

/** `bytes` of SQL-looking text without a NUL, to follow a Query header. */
export const queryText = (bytes: number): Uint8Array => new Uint8Array(bytes).fill('x'.charCodeAt(0));

/** One whole Query message of `size` bytes, its text all `x`. */
export function queryFrame(size: number): Uint8Array {
  const frame = new Uint8Array(size).fill('x'.charCodeAt(0));
  frame.set(queryHeader(size - 5));
  frame[size - 1] = 0;
  return frame;
}

/** A TCP server on loopback that accepts connections and then says and reads nothing. */
export async function silentServer() {
  const sockets = new Set<TcpSocket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.pause();
    socket.on('error', () => {});
  });
  return { accepted: () => sockets.size, ...(await listenOnLoopback(server, sockets)) };
}

/** The most connections a recording proxy had open at once, looked at every 10 ms from now on. */
export function openConnectionGauge(connections: readonly RecordedConnection[]) {
  let open = 0;
  let peak = 0;
  let seen = 0;
  const poll = setInterval(() => {
    for (; seen < connections.length; seen++) {
      open += 1;
      void connections[seen]!.closed.then(() => (open -= 1));
    }
    peak = Math.max(peak, open);
  }, 10);
  return {
    get open() {
      return open;
    },
    get peak() {
      return peak;
    },
    stop: () => clearInterval(poll),
  };
}

/** workerd's resident memory, from a baseline taken now to the peak of samples every 100 ms. */
export class ResidentWatch {
  readonly baseline: number;
  private highest: number;
  private readonly timer: ReturnType<typeof setInterval>;

  constructor(private readonly pid: number) {
    this.baseline = residentBytes(pid);
    this.highest = this.baseline;
    this.timer = setInterval(() => this.sample(), 100);
  }

  get peak(): number {
    return this.highest;
  }

  get growth(): number {
    return this.highest - this.baseline;
  }

  sample(): number {
    try {
      this.highest = Math.max(this.highest, residentBytes(this.pid));
    } catch {
      // workerd already exited
    }
    return this.highest;
  }

  stop(): this {
    this.sample();
    clearInterval(this.timer);
    return this;
  }

  describe(): string {
    return `${mib(this.baseline)} → ${mib(this.highest)} MiB (+${mib(this.growth)})`;
  }
}

const mib = (bytes: number): string => (bytes / 1024 / 1024).toFixed(1);

/** What the bridge logged: each session's closeReason and each refused upgrade's code, as JSON lines. */
export class BridgeLog {
  readonly sessions: Array<{ closeReason: string; peakHeldBytes: number; bytesToClient: number; frames: number }> = [];
  readonly refused: Array<{ code: string; status: number }> = [];
  private partial = '';

  /** For startBridge's `log`: output arrives in chunks that may split or join lines. */
  readonly write = (chunk: string): void => {
    const lines = (this.partial + chunk).split('\n');
    this.partial = lines.pop()!;
    for (const line of lines) {
      if (!line.startsWith('{"event":"pgwire-bridge.')) continue;
      const entry = JSON.parse(line);
      if (entry.event === 'pgwire-bridge.session') this.sessions.push(entry);
      else if (entry.event === 'pgwire-bridge.refused') this.refused.push(entry);
    }
  };

  /** Sessions ended, by closeReason, and upgrades refused, by code. */
  tally(): Record<string, number> {
    const counts: Record<string, number> = {};
    for (const key of [...this.sessions.map((s) => s.closeReason), ...this.refused.map((r) => `HTTP ${r.code}`)]) {
      counts[key] = (counts[key] ?? 0) + 1;
    }
    return counts;
  }
}

/** Where attacks go: each URL names its target (the bridge's PG_TARGETS), or the bridge has one. */
export interface AttackTargets {
  /** The bridge toward the real PostgreSQL. */
  readonly database: string;
  /** The bridge toward a server that accepts TCP and never answers. */
  readonly silent: string;
}

/** One attacker's run: how it ended (the bridge's close reason, `HTTP <status>`, or `held` when it gave up itself). */
export interface AttackOutcome {
  readonly endedBy: string;
  /** The SQLSTATE of the FATAL the bridge sent before it closed, if any. */
  readonly sqlState?: string | null;
  /** Binary bytes it sent. */
  readonly sent?: number;
  /** Binary bytes the bridge sent it. */
  readonly received: number;
}

type Attack = (targets: AttackTargets, login: Login, options: HostileOptions) => Promise<AttackOutcome>;

/** How long attackers that the bridge merely holds back (never refuses) keep trying before they leave. */
const HOLD_MS = 3000;

async function outcome(client: HostileClient): Promise<AttackOutcome> {
  const ending = await client.ended;
  return {
    endedBy: ending.reason || `close ${ending.code}`,
    sqlState: ending.sqlState,
    sent: client.sent,
    received: client.received,
  };
}

/** Upgrades; a refused upgrade is the attack's whole outcome. */
async function opened(url: string, options: HostileOptions): Promise<HostileClient | AttackOutcome> {
  const upgrade = await HostileClient.upgrade(url, options);
  return upgrade.client ?? { endedBy: `HTTP ${upgrade.status}`, received: 0 };
}

/** Logs in (after a refused upgrade or login, the attack is over). */
async function loggedIn(url: string, login: Login, options: HostileOptions): Promise<HostileClient | AttackOutcome> {
  const client = await opened(url, options);
  if (!(client instanceof HostileClient)) return client;
  try {
    await client.login(login);
    return client;
  } catch {
    return outcome(client);
  }
}

/** Logged in, asks for `sql` and holds on until the bridge gives up or HOLD_MS pass. */
async function hold(
  client: HostileClient,
  sql: string,
  after: (client: HostileClient) => void,
): Promise<AttackOutcome> {
  client.send(query(sql));
  client.discard();
  after(client);
  const gaveUp = new Promise<'held'>((resolve) => setTimeout(() => resolve('held'), HOLD_MS));
  const ended = await Promise.race([client.ended, gaveUp]);
  client.close();
  return ended === 'held' ? { endedBy: 'held', received: client.received } : outcome(client);
}

/** A result far larger than the window: 300 MB of rows. */
export const HUGE_RESULT = "SELECT repeat('x', 1000) FROM generate_series(1, 300000)";

async function flood(targets: AttackTargets, login: Login, options: HostileOptions, deaf = false) {
  const client = await opened(targets.silent, options);
  if (!(client instanceof HostileClient)) return client;
  client.send(startupMessage({ user: login.user, database: login.database }));
  await client.pump(queryFrame(64 * 1024), 400 * MiB, { deaf });
  return outcome(client);
}

/** Every attack of the bounds tests, by the name the soak prints. */
export const ATTACKS: Record<string, Attack> = {
  /** Logged in, a statement running, then one 700 MB Query streamed without waiting for echoes. */
  'huge query': async (targets, login, options) => {
    const client = await loggedIn(targets.database, login, options);
    if (!(client instanceof HostileClient)) return client;
    client.send(query('SELECT pg_sleep(2)'));
    client.send(queryHeader(700_000_000));
    await client.pump(queryText(MiB), 200 * MiB);
    return outcome(client);
  },
  /** The same, without flow control (a bridge with FLOW_CONTROL=offer). */
  'huge query, no flow control': async (targets, login, options) =>
    ATTACKS['huge query']!(targets, login, { ...options, flowControl: false }),
  /** A StartupMessage toward a server that never answers, then 400 MiB of Query frames. */
  'flood while connecting': (targets, login, options) => flood(targets, login, options),
  'flood while connecting, no flow control': (targets, login, options) =>
    flood(targets, login, { ...options, flowControl: false }),
  /**
   * A StartupMessage toward a server that never answers, then a Query's bytes one per WebSocket
   * message, as many as the byte window allows: each message costs workerd far more than its byte.
   */
  'one-byte messages': async (targets, login, options) => {
    const client = await opened(targets.silent, options);
    if (!(client instanceof HostileClient)) return client;
    const startup = startupMessage({ user: login.user, database: login.database });
    client.send(startup);
    client.send(queryHeader(WINDOW_TO_SERVER_BYTES));
    const byte = queryText(1);
    for (let i = startup.length + 5; i < WINDOW_TO_SERVER_BYTES && client.ws.readyState === WebSocket.OPEN; i++) {
      client.send(byte);
      if (i % 4096 === 0) await new Promise((resolve) => setImmediate(resolve));
    }
    const gaveUp = new Promise<'held'>((resolve) => setTimeout(() => resolve('held'), HOLD_MS));
    const ended = await Promise.race([client.ended, gaveUp]);
    client.close();
    return ended === 'held' ? { endedBy: 'held', sent: client.sent, received: client.received } : outcome(client);
  },
  /** The same flood from a client that reads the bridge's close only when its send buffer is full. */
  'deaf flood': (targets, login, options) => flood(targets, login, options, true),
  /** Echoes of marks the bridge never sent. */
  'forged echo': async (targets, login, options) => {
    const client = await loggedIn(targets.database, login, options);
    if (!(client instanceof HostileClient)) return client;
    client.text('aforged0000000');
    return outcome(client);
  },
  /** Asks for 300 MB, reads everything, echoes nothing. */
  'never echoes': async (targets, login, options) => {
    const client = await loggedIn(targets.database, login, { ...options, echoMarks: false });
    if (!(client instanceof HostileClient)) return client;
    return hold(client, HUGE_RESULT, () => {});
  },
  /** Asks for 300 MB, echoes every mark it reads, and stops reading TCP. */
  'paused socket': async (targets, login, options) => {
    const client = await loggedIn(targets.database, login, { ...options, echoMarks: true });
    if (!(client instanceof HostileClient)) return client;
    return hold(client, HUGE_RESULT, (c) => c.pauseTcp());
  },
  /** A StartupMessage, then silence inside SCRAM. */
  'stalled login': async (targets, login, options) => {
    const client = await opened(targets.database, options);
    if (!(client instanceof HostileClient)) return client;
    client.send(startupMessage({ user: login.user, database: login.database }));
    return outcome(client);
  },
  /** An upgrade and not one byte. */
  silent: async (targets, _login, options) => {
    const client = await opened(targets.database, options);
    if (!(client instanceof HostileClient)) return client;
    return outcome(client);
  },
};
