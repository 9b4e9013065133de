import { createHash, createHmac, pbkdf2Sync, randomBytes } from 'node:crypto';
import { connect as tcpConnect } from 'node:net';
import WebSocket from 'ws';
import { FLOW_CONTROL_PROTOCOL } from '../../common/subprotocols.js';
import { Bytes, concat, errorFields, message, readMessages, startupMessage, type BackendMessage } from './wire.js';

/** How the raw client reaches the server: a WebSocket to the bridge, or TCP straight to PostgreSQL. */
interface Transport {
  send(bytes: Uint8Array): void;
  close(): void;
  drop(): void;
}

/**
 * A small raw-protocol client for tests: it speaks the startup phase and SCRAM-SHA-256 itself, over a
 * WebSocket to the bridge or over TCP to PostgreSQL, so tests can ask for protocol 3.2, read
 * BackendKeyData as sent, send whatever bytes they like afterwards, and compare the two paths.
 * Independent of the bridge's code and of any driver.
 */
export class RawClient {
  private buffer: Uint8Array = new Uint8Array();
  private waiters: Array<() => void> = [];
  /** Every byte this client sent, in order. */
  readonly sent: Uint8Array[] = [];
  closeCode: number | undefined;
  processId = 0;
  secretKey = new Uint8Array();
  readonly serverMessages: BackendMessage[] = [];

  private transport!: Transport;

  private receive(data: Uint8Array): void {
    this.buffer = concat(this.buffer, data);
    this.wake();
  }

  private onClose(code: number): void {
    this.closeCode = code;
    this.wake();
  }

  /**
   * A WebSocket to the bridge at `url`, taking part in flow control as bridges require by default:
   * it echoes each of the bridge's marks as soon as it arrives, having read everything before it.
   */
  static async open(url: string): Promise<RawClient> {
    const ws = new WebSocket(url, [FLOW_CONTROL_PROTOCOL], { perMessageDeflate: false });
    await new Promise((resolve, reject) => {
      ws.once('open', resolve);
      ws.once('error', reject);
    });
    const client = new RawClient();
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      if (isBinary) client.receive(new Uint8Array(data));
      else if (data.toString().startsWith('m')) ws.send(`a${data.toString().slice(1)}`);
    });
    ws.on('close', (code: number) => client.onClose(code));
    client.transport = { send: (b) => ws.send(b), close: () => ws.close(), drop: () => ws.terminate() };
    return client;
  }

  /** Plain TCP straight to PostgreSQL; a close is reported as code 0. */
  static async openTcp(host: string, port: number): Promise<RawClient> {
    const socket = tcpConnect(port, host);
    await new Promise((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    const client = new RawClient();
    socket.on('data', (data) => client.receive(new Uint8Array(data)));
    socket.on('close', () => client.onClose(0));
    socket.on('error', () => {});
    client.transport = { send: (b) => socket.write(b), close: () => socket.end(), drop: () => socket.destroy() };
    return client;
  }

  /** Opens, sends a StartupMessage for protocol 3.`minor`, authenticates, and waits for ReadyForQuery. */
  static async connect(
    url: string | { host: string; port: number },
    login: { user: string; password: string; database: string },
    minor = 0,
    extra: Record<string, string> = {},
  ): Promise<RawClient> {
    const client = typeof url === 'string' ? await RawClient.open(url) : await RawClient.openTcp(url.host, url.port);
    client.send(startupMessage({ user: login.user, database: login.database, ...extra }, 3, minor));
    await client.authenticate(login.password);
    return client;
  }

  send(bytes: Uint8Array): void {
    this.sent.push(bytes);
    this.transport.send(bytes);
  }

  /** The next whole backend message; throws if the connection closes first. */
  async next(timeoutMs = 5000): Promise<BackendMessage> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const complete = this.completeLength();
      if (complete > 0) {
        const [first] = readMessages(this.buffer.subarray(0, complete));
        this.buffer = this.buffer.slice(complete);
        this.serverMessages.push(first!);
        return first!;
      }
      if (this.closeCode !== undefined) throw new Error(`connection closed (${this.closeCode})`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error('no message in time');
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  /** Every whole message received and not yet read. */
  drain(): BackendMessage[] {
    const messages: BackendMessage[] = [];
    for (let length = this.completeLength(); length > 0; length = this.completeLength()) {
      messages.push(...readMessages(this.buffer.subarray(0, length)));
      this.buffer = this.buffer.slice(length);
    }
    this.serverMessages.push(...messages);
    return messages;
  }

  /** Bytes received that do not make a whole message. */
  get leftover(): number {
    return this.buffer.length;
  }

  /** Messages up to and including the first of type `type`. */
  async until(type: string, timeoutMs = 5000): Promise<BackendMessage[]> {
    const seen: BackendMessage[] = [];
    for (;;) {
      const next = await this.next(timeoutMs);
      seen.push(next);
      if (next.type === type) return seen;
    }
  }

  /** Waits until the bridge closes the WebSocket; returns its close code. */
  async closed(timeoutMs = 5000): Promise<number> {
    const deadline = Date.now() + timeoutMs;
    while (this.closeCode === undefined && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    if (this.closeCode === undefined) throw new Error('still open');
    return this.closeCode;
  }

  close(): void {
    this.transport.close();
  }

  /** Drops the connection without a close frame. */
  drop(): void {
    this.transport.drop();
  }

  private async authenticate(password: string): Promise<void> {
    const nonce = randomBytes(18).toString('base64');
    const clientFirstBare = `n=,r=${nonce}`;
    for (;;) {
      const msg = await this.next();
      if (msg.type === 'E') throw Object.assign(new Error(errorFields(msg.body).M), errorFields(msg.body));
      if (msg.type === 'K') {
        const view = Buffer.from(msg.body);
        this.processId = view.readInt32BE(0);
        this.secretKey = msg.body.slice(4);
      }
      if (msg.type === 'Z') return;
      if (msg.type !== 'R') continue;
      const code = Buffer.from(msg.body).readInt32BE(0);
      if (code === 10) {
        // AuthenticationSASL: answer with SASLInitialResponse.
        const first = Buffer.from(`n,,${clientFirstBare}`);
        this.send(message('p', new Bytes().cstring('SCRAM-SHA-256').int32(first.length).raw(first).build()));
      } else if (code === 11) {
        const serverFirst = Buffer.from(msg.body.subarray(4)).toString();
        const attrs = Object.fromEntries(serverFirst.split(',').map((kv) => [kv[0], kv.slice(2)]));
        const salted = pbkdf2Sync(password, Buffer.from(attrs.s!, 'base64'), Number(attrs.i), 32, 'sha256');
        const clientKey = createHmac('sha256', salted).update('Client Key').digest();
        const storedKey = createHash('sha256').update(clientKey).digest();
        const withoutProof = `c=biws,r=${attrs.r}`;
        const authMessage = `${clientFirstBare},${serverFirst},${withoutProof}`;
        const signature = createHmac('sha256', storedKey).update(authMessage).digest();
        const proof = Buffer.from(clientKey.map((byte, i) => byte ^ signature[i]!)).toString('base64');
        this.send(message('p', new Bytes().raw(Buffer.from(`${withoutProof},p=${proof}`)).build()));
      } else if (code !== 0 && code !== 12) {
        throw new Error(`unexpected authentication request ${code}`);
      }
    }
  }

  /** Length of the first whole message in the buffer, or 0. */
  private completeLength(): number {
    if (this.buffer.length < 5) return 0;
    const length = Buffer.from(this.buffer.buffer, this.buffer.byteOffset + 1, 4).readUInt32BE(0) + 1;
    return this.buffer.length >= length ? length : 0;
  }

  private wake(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const wake of waiters) wake();
  }
}
