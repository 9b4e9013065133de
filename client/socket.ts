import {
  CLIENT_MESSAGE_WINDOW,
  countingMarkIds,
  FlowReceiver,
  FlowSender,
  WINDOW_TO_CLIENT_BYTES,
  WINDOW_TO_SERVER_BYTES,
} from '../common/flow-control.js';
import {
  echoMessage,
  encodeBase64Url,
  FLOW_CONTROL_PROTOCOL,
  FLOW_CONTROL_STARTUP_PROTOCOL,
  KEEPALIVE,
  markMessage,
  MAX_INLINE_STARTUP_CHARS,
  parseFlowMessage,
  STARTUP_PROTOCOL_PREFIX,
  TOKEN_PROTOCOL_PREFIX,
} from '../common/subprotocols.js';
import { timer, type Timer } from '../common/timer.js';
import { Emitter } from './emitter.js';
import { openWithFetch, type UpgradingFetch } from './fetch-upgrade.js';
import { TlsRequestWatch } from './tls-request-watch.js';

/** The standard WebSocket constructor: globalThis.WebSocket in browsers, Deno, Bun, Workers and Node ≥ 22; `ws` in older Node. */
export type WebSocketConstructor = new (url: string, protocols?: string | string[], options?: object) => WebSocketLike;

/** The part of the WHATWG WebSocket interface the socket uses. */
export interface WebSocketLike {
  binaryType: string;
  readonly readyState: number;
  readonly bufferedAmount?: number;
  readonly protocol?: string | null;
  /** Events 'open', 'message' ({ data }), 'close' ({ code }) and 'error'. */
  addEventListener(type: string, listener: (event: any) => void): void;
  send(data: Uint8Array | string): void;
  close(code?: number, reason?: string): void;
}

export interface SocketOptions {
  /** The bridge endpoint, e.g. `wss://bridge.example.com/v1`. */
  url: string | URL;
  /** WebSocket implementation; defaults to globalThis.WebSocket. Pass `ws` in Node < 22. */
  WebSocket?: WebSocketConstructor;
  /** Largest WebSocket message sent; larger writes are split. Default 1 MiB (Workers accept up to 32 MiB). */
  maxMessageBytes?: number;
  /** `write()` returns false once this many bytes wait to be sent; 'drain' follows. Default 1 MiB. */
  highWaterMark?: number;
  /**
   * Third argument to the WebSocket constructor, read by `ws` and ignored by standard WebSockets.
   * Default `{ perMessageDeflate: false }`: compressing small protocol messages costs far more
   * time than it saves bytes (local workerd accepts compression; Cloudflare's edge does not).
   */
  webSocketOptions?: object;
  /**
   * Take part in the bridge's flow control (default true): acknowledge the bytes handed to the
   * driver, so the bridge stops reading from PostgreSQL while the driver is paused or slow.
   */
  flowControl?: boolean;
  /**
   * Open the WebSocket with this fetch and `Upgrade: websocket` instead of the WebSocket
   * constructor: in Cloudflare Workers, the global `fetch` or a service binding's.
   */
  fetch?: UpgradingFetch;
  /**
   * Received bytes are handed to the driver as `Buffer.from(arrayBuffer)`: drivers read them with
   * Buffer methods. Default globalThis.Buffer (Node, Bun, Deno, Workers with nodejs_compat); in a
   * browser pass the `buffer` package's Buffer.
   */
  Buffer?: BufferClass;
  /**
   * With flow control, send a keepalive every this many milliseconds in which nothing else went
   * out (default 30 000; 0 turns it off): Cloudflare closes WebSockets idle for 100 s, which would
   * drop an idle pooled connection. Keepalives do not count against the bridge's idle timeout.
   */
  keepAliveMs?: number;
  /** A token for a bridge that checks them, sent as the subprotocol `pgwire-bridge.token.<token>` (not in the URL). */
  token?: string;
  /**
   * Carry the driver's StartupMessage in the WebSocket upgrade (default true, with flow control):
   * 'connect' comes at once, the WebSocket opens with the driver's first write, and the bridge
   * starts connecting to PostgreSQL while it answers the upgrade, a round trip sooner. A bridge
   * that does not take it gets the StartupMessage as its first message, as before.
   */
  startupInUpgrade?: boolean;
}

/** An Error with the `code` Node's net errors carry, so drivers can tell them apart. */
export class SocketError extends Error {
  constructor(
    message: string,
    readonly code: string,
    readonly closeCode?: number,
  ) {
    super(message);
    this.name = 'SocketError';
  }
}

const OPEN = 1;
const DEFAULT_MAX_MESSAGE_BYTES = 1024 * 1024;
const DEFAULT_HIGH_WATER_MARK = 1024 * 1024;
const DRAIN_POLL_MS = 5;
const DEFAULT_KEEPALIVE_MS = 30_000;

/** Node's Buffer, or a browser copy of it (the `buffer` package): what drivers expect chunks to be. */
export interface BufferClass {
  from(data: ArrayBuffer): Uint8Array;
}

type WriteCallback = (error?: Error | null) => void;

/**
 * A Node `net.Socket` look-alike over a WebSocket to pgwire-bridge, with the surface PostgreSQL
 * drivers and Node's `tls.connect({ socket })` use: connect, write, end, destroy, cork/uncork,
 * pause/resume, setTimeout, the no-op socket options, the address and byte counters, and the
 * events connect, data, end, close, error, drain, timeout, pause and resume. Writes made in one
 * tick go out as one WebSocket message, sent from a microtask (never a timer), and may be made
 * before the WebSocket is open.
 */
export class Socket extends Emitter {
  connecting = false;
  destroyed = false;
  writable = true;
  readable = true;
  /** PostgreSQL bytes handed to the driver and taken from it (flow-control messages not counted). */
  bytesRead = 0;
  bytesWritten = 0;
  /** The idle timeout set with setTimeout(), in milliseconds; 0 when off. */
  timeout = 0;

  private ws: WebSocketLike | null = null;
  private readonly url: string;
  private readonly WebSocketImpl: WebSocketConstructor | undefined;
  private readonly fetchImpl: UpgradingFetch | undefined;
  private readonly BufferImpl: BufferClass | undefined;
  private readonly maxMessageBytes: number;
  private readonly highWaterMark: number;
  private readonly webSocketOptions: object;
  private readonly askForFlowControl: boolean;
  private readonly token: string | undefined;
  private readonly keepAliveMs: number;
  private keepAliveTimer: ReturnType<typeof setInterval> | null = null;
  /** Whether anything went to the bridge since the keepalive timer last looked. */
  private sentRecently = false;
  /** Toward the bridge, once it agreed to flow control: bytes PostgreSQL has not yet taken. */
  private flowSender: FlowSender | null = null;
  /** From the bridge, once it agreed to flow control: bytes the driver has not yet been handed. */
  private flowReceiver: FlowReceiver | null = null;
  private pending: Uint8Array[] = [];
  private pendingBytes = 0;
  private pendingCallbacks: WriteCallback[] = [];
  private flushScheduled = false;
  private needDrain = false;
  private drainTimer: ReturnType<typeof setTimeout> | null = null;
  private ended = false;
  private closeEmitted = false;
  /** Paused mode, as Node's readable streams have it: data waits for read() or resume(). */
  private paused = false;
  private unread: Uint8Array[] = [];
  private endPending = false;
  /** cork() calls not yet matched by uncork(): writes wait until the last uncork(). */
  private corked = 0;
  /** Emits 'timeout' after `timeout` ms without traffic. */
  private idle: Timer = timer(0, () => {});
  private readonly tlsWatch = new TlsRequestWatch();
  private readonly startupInUpgrade: boolean;
  /** Between connect() and the first write, with startup in the upgrade: how to open the WebSocket. */
  private deferred: { readonly url: string; readonly protocols: string[] } | null = null;
  private connectEmitted = false;
  /** Bytes at the front of the queue offered in the upgrade: dropped if the bridge took them, sent if not. */
  private inlined = 0;

  constructor(options: SocketOptions) {
    super();
    this.url = String(options.url);
    this.WebSocketImpl = options.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
    this.fetchImpl = options.fetch;
    this.BufferImpl = options.Buffer ?? (globalThis as { Buffer?: BufferClass }).Buffer;
    this.maxMessageBytes = options.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
    this.highWaterMark = options.highWaterMark ?? DEFAULT_HIGH_WATER_MARK;
    this.webSocketOptions = options.webSocketOptions ?? { perMessageDeflate: false };
    this.askForFlowControl = options.flowControl ?? true;
    this.token = options.token;
    this.keepAliveMs = options.keepAliveMs ?? DEFAULT_KEEPALIVE_MS;
    this.startupInUpgrade = (options.startupInUpgrade ?? true) && this.askForFlowControl;
  }

  /** The bridge's host and port, as net.Socket gives its peer's, once open. */
  get remoteAddress(): string | undefined {
    return this.ws && !this.connecting ? new URL(this.url).hostname.replace(/^\[|\]$/g, '') : undefined;
  }

  get remotePort(): number | undefined {
    if (!this.ws || this.connecting) return undefined;
    const { port, protocol } = new URL(this.url);
    return port ? Number(port) : protocol === 'wss:' || protocol === 'https:' ? 443 : 80;
  }

  get remoteFamily(): string | undefined {
    const address = this.remoteAddress;
    return address === undefined ? undefined : address.includes(':') ? 'IPv6' : 'IPv4';
  }

  /** A WebSocket has no local address a driver could use: `{}`, as net.Socket gives before it connects. */
  address(): Record<string, never> {
    return {};
  }

  get writableCorked(): number {
    return this.corked;
  }

  get readyState(): 'opening' | 'open' | 'readOnly' | 'writeOnly' | 'closed' {
    if (this.connecting) return 'opening';
    if (this.readable && this.writable) return 'open';
    if (this.readable) return 'readOnly';
    if (this.writable) return 'writeOnly';
    return 'closed';
  }

  /**
   * Port and host are the driver's idea of the database. They travel as the `host` and `port`
   * query parameters (unless the URL has them already): a bridge with a target allowlist
   * connects there if allowed; a bridge with one fixed database ignores them.
   */
  connect(port?: number | string, host?: string, callback?: () => void): this {
    if (callback) this.once('connect', callback);
    if (!this.WebSocketImpl && !this.fetchImpl) {
      this.fail(new SocketError('no WebSocket implementation: pass the WebSocket or fetch option', 'ERR_NO_WEBSOCKET'));
      return this;
    }
    this.connecting = true;
    const protocols = [
      ...(this.askForFlowControl ? [FLOW_CONTROL_PROTOCOL] : []),
      ...(this.token ? [`${TOKEN_PROTOCOL_PREFIX}${this.token}`] : []),
    ];
    let url: string;
    try {
      url = withTarget(this.url, host, port);
    } catch (error) {
      this.failInvalidUrl(error);
      return this;
    }
    if (this.startupInUpgrade) this.deferOpen(url, protocols);
    else this.open(url, protocols);
    return this;
  }

  private open(url: string, protocols: string[]): void {
    if (this.fetchImpl) this.connectWithFetch(this.fetchImpl, url, protocols);
    else this.connectWithConstructor(this.WebSocketImpl!, url, protocols);
  }

  /**
   * 'connect' at once (drivers add their listener after connect() returns, so a microtask
   * later), so that the driver writes its StartupMessage before the WebSocket exists; the
   * WebSocket opens with that first write, or a task later if none comes.
   */
  private deferOpen(url: string, protocols: string[]): void {
    this.deferred = { url, protocols };
    queueMicrotask(() => {
      if (this.destroyed) return;
      this.emitConnect();
      setTimeout(() => this.openDeferred(), 0);
    });
  }

  /** Opens the deferred WebSocket, offering the queue's StartupMessage in the upgrade when there is one. */
  private openDeferred(): void {
    const deferred = this.deferred;
    if (!deferred || this.destroyed) return;
    this.deferred = null;
    const startup = this.queuedStartupMessage();
    if (startup === null) return this.open(deferred.url, deferred.protocols);
    const encoded = encodeBase64Url(startup);
    if (encoded.length > MAX_INLINE_STARTUP_CHARS) return this.open(deferred.url, deferred.protocols);
    this.inlined = startup.length;
    this.open(deferred.url, [
      FLOW_CONTROL_STARTUP_PROTOCOL,
      ...deferred.protocols,
      `${STARTUP_PROTOCOL_PREFIX}${encoded}`,
    ]);
  }

  /** A whole protocol-3 StartupMessage at the front of the queue (not an SSLRequest, not Terminate), or null. */
  private queuedStartupMessage(): Uint8Array | null {
    if (this.pendingBytes < STARTUP_HEADER_BYTES) return null;
    const head = peekBytes(this.pending, STARTUP_HEADER_BYTES);
    const view = new DataView(head.buffer, head.byteOffset, head.byteLength);
    const length = view.getUint32(0);
    const major = view.getUint16(4);
    if (major !== PROTOCOL_MAJOR || length < STARTUP_HEADER_BYTES || length > this.pendingBytes) return null;
    return peekBytes(this.pending, length);
  }

  private connectWithConstructor(WebSocketImpl: WebSocketConstructor, url: string, protocols: string[]): void {
    let ws: WebSocketLike;
    try {
      ws = new WebSocketImpl(url, protocols, this.webSocketOptions);
    } catch (error) {
      // The URL parsed, but this WebSocket implementation refuses it (a scheme it does not take).
      this.failInvalidUrl(error);
      return;
    }
    // `ws` starts with Node Buffers, which need no copy; standard WebSockets start with Blobs.
    if (ws.binaryType !== 'nodebuffer') ws.binaryType = 'arraybuffer';
    this.attach(ws);
    ws.addEventListener('open', () => this.opened(ws.protocol ?? ''));
    ws.addEventListener('error', (event: { message?: unknown }) => {
      // The close event that follows carries the code; an error before open never opened.
      // Browsers say nothing more; `ws` says why (the HTTP status of a refused upgrade, say).
      if (this.connecting) {
        this.failToOpen(typeof event?.message === 'string' ? event.message : undefined);
      }
    });
  }

  private connectWithFetch(fetchImpl: UpgradingFetch, url: string, protocols: string[]): void {
    openWithFetch(fetchImpl, url, protocols).then(
      ({ webSocket, protocol }) => {
        if (this.destroyed) return webSocket.close(1000, 'client closed');
        this.attach(webSocket);
        this.opened(protocol);
      },
      (error: unknown) => this.failToOpen(describeError(error)),
    );
  }

  private attach(ws: WebSocketLike): void {
    this.ws = ws;
    ws.addEventListener('message', ({ data }: { data: unknown }) => {
      try {
        if (typeof data === 'string') this.onFlowMessage(data);
        else if (data instanceof Uint8Array) this.onData(data);
        else if (data instanceof ArrayBuffer) this.onData(this.BufferImpl?.from(data) ?? new Uint8Array(data));
        // Dropping it would lose protocol bytes and leave the driver waiting.
        else throw new TypeError(`the WebSocket delivered ${typeName(data)}, not bytes: it ignored binaryType`);
      } catch (error) {
        // A throwing 'data' listener would otherwise vanish into the WebSocket's event loop and
        // leave the driver waiting forever; fail the socket so it hears of it.
        this.destroy(error instanceof Error ? error : new Error(String(error)));
      }
    });
    ws.addEventListener('close', ({ code }: { code: number }) => this.onWebSocketClose(code));
  }

  private opened(protocol: string): void {
    this.connecting = false;
    if (protocol === FLOW_CONTROL_PROTOCOL || protocol === FLOW_CONTROL_STARTUP_PROTOCOL) {
      this.flowSender = new FlowSender(WINDOW_TO_SERVER_BYTES, countingMarkIds(), CLIENT_MESSAGE_WINDOW);
      this.flowReceiver = new FlowReceiver(WINDOW_TO_CLIENT_BYTES);
      if (this.keepAliveMs > 0) this.startKeepAlive();
    }
    if (protocol === FLOW_CONTROL_STARTUP_PROTOCOL && this.inlined > 0) {
      // The bridge took the StartupMessage from the upgrade, and counts it as received: so do we.
      this.takePending(this.inlined);
      const mark = this.flowSender!.count(this.inlined);
      if (mark) this.ws!.send(markMessage(mark));
    }
    this.inlined = 0;
    this.emitConnect();
    this.flush();
  }

  private emitConnect(): void {
    if (this.connectEmitted) return;
    this.connectEmitted = true;
    this.emit('connect');
    this.emit('ready');
  }

  write(data: Uint8Array | string, encodingOrCallback?: string | WriteCallback, callback?: WriteCallback): boolean {
    const cb = typeof encodingOrCallback === 'function' ? encodingOrCallback : callback;
    if (!this.writable || this.destroyed) {
      const error = new SocketError('This socket has been ended', 'EPIPE');
      queueMicrotask(() => {
        cb?.(error);
        if (!this.destroyed) this.emit('error', error);
      });
      return false;
    }
    const bytes = typeof data === 'string' ? new TextEncoder().encode(data) : data;
    if (this.tlsWatch.written(bytes)) {
      // The driver starts TLS although the bridge said N: it would only ever get a TLS alert.
      this.fail(
        new SocketError(
          'the bridge does not offer TLS inside its WebSocket (wss:// is the encrypted link): do not set ssl, or set it to "prefer"',
          'ERR_SSL_NOT_OFFERED',
        ),
      );
      return false;
    }
    this.bytesWritten += bytes.length;
    this.touch();
    if (bytes.length > 0) {
      this.pending.push(bytes);
      this.pendingBytes += bytes.length;
    }
    if (cb) this.pendingCallbacks.push(cb);
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      queueMicrotask(() => this.flush());
    }
    const belowMark = this.canTakeMore();
    if (!belowMark) this.needDrain = true;
    return belowMark;
  }

  /** WebSockets cannot half-close: send what is queued, then close. */
  end(
    data?: Uint8Array | string | WriteCallback,
    encodingOrCallback?: string | WriteCallback,
    callback?: WriteCallback,
  ): this {
    if (typeof data === 'function') callback = data;
    else if (data !== undefined) this.write(data, encodingOrCallback as string);
    if (typeof encodingOrCallback === 'function') callback = encodingOrCallback;
    if (callback) this.once('finish', callback);
    if (this.ended) return this;
    this.ended = true;
    this.writable = false;
    this.corked = 0;
    if (this.deferred) this.openDeferred();
    else if (!this.connecting) this.flush();
    return this;
  }

  destroy(error?: Error): this {
    if (this.destroyed) return this;
    this.destroyed = true;
    this.deferred = null;
    this.stopKeepAlive();
    this.setTimeout(0);
    this.writable = false;
    this.readable = false;
    this.pending = [];
    this.pendingBytes = 0;
    const ws = this.ws;
    if (ws && ws.readyState <= OPEN) ws.close(1000, 'client closed');
    queueMicrotask(() => {
      if (error) this.emit('error', error);
      this.emitClose();
    });
    return this;
  }

  /** Holds data back from 'data' listeners (and so from the bridge's flow control) until resume(). */
  pause(): this {
    if (!this.paused) this.emit('pause');
    this.paused = true;
    return this;
  }

  resume(): this {
    if (this.paused) this.emit('resume');
    this.paused = false;
    while (!this.paused && this.unread.length > 0) this.deliver(this.unread.shift()!);
    if (this.unread.length === 0 && this.endPending) this.finishReading();
    return this;
  }

  isPaused(): boolean {
    return this.paused;
  }

  /** The next chunk received while paused, or null. */
  read(): Uint8Array | null {
    const chunk = this.unread.shift() ?? null;
    if (chunk) this.delivered(chunk.length);
    if (this.unread.length === 0 && this.endPending) queueMicrotask(() => this.finishReading());
    return chunk;
  }

  setNoDelay(): this {
    return this;
  }
  setKeepAlive(): this {
    return this;
  }
  /** Writes wait until as many uncork() calls; tls.connect corks around each batch it writes. */
  cork(): void {
    this.corked += 1;
  }

  uncork(): void {
    if (this.corked === 0) return;
    this.corked -= 1;
    if (this.corked === 0 && this.pendingBytes + this.pendingCallbacks.length > 0) this.flush();
  }

  /**
   * As net.Socket: after `ms` without data either way, emit 'timeout' (the socket stays open; the
   * caller decides). 0 turns it off; a callback is added as a 'timeout' listener (removed with 0).
   */
  setTimeout(ms: number, callback?: () => void): this {
    if (callback) {
      if (ms === 0) this.off('timeout', callback);
      else this.once('timeout', callback);
    }
    this.timeout = ms;
    this.idle.dispose();
    this.idle = timer(ms, () => this.emit('timeout'), { unref: true });
    this.touch();
    return this;
  }
  ref(): this {
    return this;
  }
  unref(): this {
    return this;
  }

  private bufferedBytes(): number {
    return this.pendingBytes + (this.ws?.bufferedAmount ?? 0);
  }

  /** Below the high-water mark here: bytes waiting for the WebSocket or for the flow-control window. */
  private canTakeMore(): boolean {
    return this.bufferedBytes() < this.highWaterMark;
  }

  /** Flow control from the bridge: its marks, and its echoes of ours. */
  private onFlowMessage(text: string): void {
    const message = parseFlowMessage(text);
    if (!this.flowSender || !this.flowReceiver || message === null) return;
    if (message.kind === 'mark') {
      this.flowReceiver.markLatest(message.id);
      this.echoDelivered();
    } else if (message.kind === 'echo' && this.flowSender.echoed(message.id)) {
      this.flush();
    }
  }

  /**
   * Sends what was written since the last flush, split at maxMessageBytes, once the WebSocket is
   * open; with flow control, no more than the window lets through: the rest waits for an echo.
   */
  private flush(): void {
    this.flushScheduled = false;
    if (this.corked > 0) return;
    if (this.deferred) return this.openDeferred();
    const ws = this.ws;
    if (!ws || ws.readyState !== OPEN) return;
    const sender = this.flowSender;
    while (this.pendingBytes > 0) {
      const size = Math.min(this.pendingBytes, this.maxMessageBytes, sender ? sender.room : Infinity);
      if (size === 0) break;
      ws.send(this.takePending(size));
      this.sentRecently = true;
      const mark = sender?.count(size);
      if (mark) ws.send(markMessage(mark));
    }
    // With bytes left, the window is full, and the echo of a mark already out reopens it.
    if (this.pendingBytes === 0) {
      const callbacks = this.pendingCallbacks;
      this.pendingCallbacks = [];
      for (const cb of callbacks) cb(null);
      if (this.ended) {
        this.emit('finish');
        ws.close(1000, 'client ended');
      }
    }
    if (this.needDrain) this.waitForDrain();
  }

  /** Takes `size` bytes off the front of the queue as one message, copying only when it must. */
  private takePending(size: number): Uint8Array {
    const first = this.pending[0]!;
    if (first.length === size) {
      this.pending.shift();
      this.pendingBytes -= size;
      return first;
    }
    const message = new Uint8Array(size);
    let filled = 0;
    while (filled < size) {
      const chunk = this.pending[0]!;
      const take = Math.min(chunk.length, size - filled);
      message.set(chunk.subarray(0, take), filled);
      filled += take;
      if (take === chunk.length) this.pending.shift();
      else this.pending[0] = chunk.subarray(take);
    }
    this.pendingBytes -= size;
    return message;
  }

  /**
   * WebSockets have no drain event: watch bufferedAmount, only while a writer is waiting. The
   * bridge's acknowledgements also call this, so one timer at a time keeps watch.
   */
  private waitForDrain(): void {
    if (this.destroyed || !this.needDrain) return;
    if (this.canTakeMore()) {
      this.needDrain = false;
      this.emit('drain');
      return;
    }
    this.drainTimer ??= setTimeout(() => {
      this.drainTimer = null;
      this.waitForDrain();
    }, DRAIN_POLL_MS);
  }

  private onData(chunk: Uint8Array): void {
    this.flowReceiver?.receive(chunk.length);
    this.tlsWatch.received(chunk);
    this.touch();
    if (this.paused || this.unread.length > 0) {
      this.unread.push(chunk);
      this.emit('readable');
    } else {
      this.deliver(chunk);
    }
  }

  private deliver(chunk: Uint8Array): void {
    this.emit('data', chunk);
    this.delivered(chunk.length);
  }

  /** The driver has been handed `bytes` more: echo the bridge's marks they complete. */
  private delivered(bytes: number): void {
    this.bytesRead += bytes;
    this.flowReceiver?.consume(bytes);
    this.echoDelivered();
  }

  private echoDelivered(): void {
    const id = this.flowReceiver?.takeEcho();
    if (!id || this.ws?.readyState !== OPEN) return;
    this.ws.send(echoMessage(id));
    this.sentRecently = true;
  }

  /** Every keepAliveMs, a keepalive unless something else went out meanwhile. */
  private startKeepAlive(): void {
    const timer = setInterval(() => {
      if (this.ws?.readyState !== OPEN || this.destroyed) return this.stopKeepAlive();
      if (!this.sentRecently) this.ws.send(KEEPALIVE);
      this.sentRecently = false;
    }, this.keepAliveMs);
    // Node: the timer alone does not keep the process running.
    (timer as { unref?: () => void }).unref?.();
    this.keepAliveTimer = timer;
  }

  private stopKeepAlive(): void {
    if (this.keepAliveTimer !== null) clearInterval(this.keepAliveTimer);
    this.keepAliveTimer = null;
  }

  /** Activity restarts the idle timeout. */
  private touch(): void {
    if (!this.destroyed) this.idle.start();
  }

  private onWebSocketClose(code: number): void {
    this.stopKeepAlive();
    this.connecting = false;
    this.writable = false;
    if (this.destroyed) return;
    // 1006: the connection dropped without a close frame. Anything else is an orderly close,
    // after which the bridge has already said why (as a PostgreSQL ErrorResponse) where it could.
    if (code === 1006 && !this.ended) {
      this.destroyed = true;
      this.readable = false;
      this.emit('error', new SocketError('the WebSocket to the bridge closed abnormally', 'ECONNRESET', code));
      this.emitClose();
      return;
    }
    this.endPending = true;
    if (this.unread.length === 0) this.finishReading();
  }

  /** The peer is done and every received byte has been read: 'end', then 'close'. */
  private finishReading(): void {
    if (!this.endPending || this.closeEmitted) return;
    this.endPending = false;
    this.destroyed = true;
    this.setTimeout(0);
    this.readable = false;
    this.emit('end');
    this.emitClose();
  }

  private fail(error: SocketError): void {
    this.deferred = null;
    this.connecting = false;
    this.writable = false;
    this.readable = false;
    const ws = this.ws;
    this.ws = null;
    if (ws && ws.readyState <= OPEN) ws.close();
    if (this.destroyed) return;
    this.destroyed = true;
    this.stopKeepAlive();
    this.setTimeout(0);
    // A task later, not a microtask: a driver that awaits its socket factory (postgres.js) adds
    // its listeners after a few microtasks, and a failure it never hears of leaves it waiting.
    setTimeout(() => {
      this.emit('error', error);
      this.emitClose();
    }, 0);
  }

  /** The WebSocket never opened; `reason`, when the implementation gave one, says why. */
  private failToOpen(reason?: string): void {
    // A token in a query string must not end up in an error, nor in the logs errors go to.
    const why = reason ? `: ${withoutQueries(reason)}` : '';
    this.fail(new SocketError(`could not open a WebSocket to ${withoutQueries(this.url)}${why}`, 'ECONNREFUSED'));
  }

  private failInvalidUrl(error: unknown): void {
    this.fail(new SocketError(`invalid bridge URL: ${String(error)}`, 'ERR_INVALID_URL'));
  }

  private emitClose(): void {
    if (this.closeEmitted) return;
    this.closeEmitted = true;
    this.emit('close', false);
  }
}

/** A startup packet's length and protocol code: what tells a StartupMessage apart. */
const STARTUP_HEADER_BYTES = 8;
const PROTOCOL_MAJOR = 3;

/** The first `size` bytes of a queue of chunks that holds at least that many, copied. */
function peekBytes(chunks: readonly Uint8Array[], size: number): Uint8Array {
  const out = new Uint8Array(size);
  let filled = 0;
  for (const chunk of chunks) {
    if (filled === size) break;
    const take = Math.min(chunk.length, size - filled);
    out.set(chunk.subarray(0, take), filled);
    filled += take;
  }
  return out;
}

function withTarget(url: string, host: string | undefined, port: number | string | undefined): string {
  const parsed = new URL(url);
  if (host && !parsed.searchParams.has('host')) parsed.searchParams.set('host', host);
  if (port !== undefined && port !== '' && !parsed.searchParams.has('port'))
    parsed.searchParams.set('port', String(port));
  return parsed.href;
}

/** An error's message and its causes' ("fetch failed: invalid upgrade header"). */
function describeError(error: unknown): string {
  const parts: string[] = [];
  for (let e: unknown = error; e !== undefined && parts.length < 4; e = (e as { cause?: unknown }).cause) {
    parts.push(e instanceof Error ? e.message : String(e));
    if (!(e instanceof Error)) break;
  }
  return parts.join(': ');
}

function typeName(value: unknown): string {
  return Object.prototype.toString.call(value).slice(8, -1);
}

/** The text with every URL in it cut before its query string and fragment. */
function withoutQueries(text: string): string {
  return text.replace(/([a-z]+:\/\/[^\s?#]*)[?#][^\s]*/gi, '$1');
}
