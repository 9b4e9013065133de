import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import WebSocket, { WebSocketServer } from 'ws';
import { afterEach, describe, expect, it } from 'vitest';
import { Socket, SocketError } from 'pgwire-bridge/client';
import { freePort } from '../../dev/postgres.js';
import { WINDOW_TO_SERVER_BYTES } from '../../common/flow-control.js';
import {
  encodeBase64Url,
  FLOW_CONTROL_PROTOCOL,
  FLOW_CONTROL_STARTUP_PROTOCOL,
  STARTUP_PROTOCOL_PREFIX,
} from '../../common/subprotocols.js';
import { sslRequest, startupMessage } from '../support/wire.js';

/** A real WebSocket server on loopback standing in for the bridge, recording every message. */
async function server(onConnection: (peer: WebSocket) => void = () => {}) {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  await new Promise((resolve) => wss.once('listening', resolve));
  const messages: Buffer[] = [];
  /** The text messages among them (flow control), and the binary ones. */
  const texts: string[] = [];
  const binary: Buffer[] = [];
  const extensions: string[] = [];
  wss.on('connection', (peer, request) => {
    extensions.push(request.headers['sec-websocket-extensions'] ?? '');
    peer.on('message', (data: Buffer, isBinary: boolean) => {
      messages.push(data);
      if (isBinary) binary.push(data);
      else texts.push(data.toString());
    });
    onConnection(peer);
  });
  servers.push(wss);
  return { url: `ws://127.0.0.1:${(wss.address() as AddressInfo).port}/v1`, messages, texts, binary, extensions };
}

const servers: WebSocketServer[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((wss) => new Promise((resolve) => wss.close(resolve))));
});

/** A socket whose 'connect' means the WebSocket is open (the startup-in-upgrade tests turn that on). */
function socketTo(url: string, options: Partial<ConstructorParameters<typeof Socket>[0]> = {}): Socket {
  return new Socket({ url, WebSocket: WebSocket as never, startupInUpgrade: false, ...options });
}

const once = <T = unknown>(socket: Socket, event: string) => new Promise<T>((resolve) => socket.once(event, resolve));
const until = async (check: () => boolean) => {
  for (let i = 0; i < 200 && !check(); i++) await new Promise((resolve) => setTimeout(resolve, 5));
};

describe('client Socket', () => {
  it('accepts writes before the WebSocket opens and sends them in order, in one message', async () => {
    const { url, messages } = await server();
    const socket = socketTo(url).connect();
    socket.write(Uint8Array.of(1, 2));
    socket.write(Uint8Array.of(3));
    await once(socket, 'connect');
    await until(() => messages.length > 0);
    expect(messages.map((m) => [...m])).toEqual([[1, 2, 3]]);
    socket.destroy();
  });

  it('coalesces the writes of one tick into one WebSocket message, without a timer', async () => {
    const { url, messages } = await server();
    const socket = socketTo(url).connect();
    await once(socket, 'connect');
    for (let i = 0; i < 5; i++) socket.write(Uint8Array.of(i));
    await Promise.resolve();
    await new Promise((resolve) => queueMicrotask(() => resolve(null)));
    socket.write(Uint8Array.of(9));
    await until(() => messages.length >= 2);
    expect(messages.map((m) => [...m])).toEqual([[0, 1, 2, 3, 4], [9]]);
    socket.destroy();
  });

  it('splits a large write into messages no larger than maxMessageBytes, losing nothing', async () => {
    const { url, messages } = await server();
    const socket = socketTo(url, { maxMessageBytes: 1000 }).connect();
    await once(socket, 'connect');
    const big = Uint8Array.from({ length: 2500 }, (_, i) => i % 251);
    socket.write(big.subarray(0, 700));
    socket.write(big.subarray(700));
    await until(() => messages.length >= 3);
    expect(messages.map((m) => m.length)).toEqual([1000, 1000, 500]);
    expect(new Uint8Array(Buffer.concat(messages))).toEqual(big);
    socket.destroy();
  });

  it('does not offer permessage-deflate when it can choose', async () => {
    const { url, extensions } = await server();
    const socket = socketTo(url).connect();
    await once(socket, 'connect');
    expect(extensions).toEqual(['']);
    socket.destroy();
  });

  it('emits received messages as data, and end then close when the peer closes normally', async () => {
    const { url } = await server((peer) => {
      peer.send(Uint8Array.of(7, 8));
      peer.close(1000);
    });
    const socket = socketTo(url).connect();
    const events: string[] = [];
    socket.on('data', (chunk: Uint8Array) => events.push(`data:${[...chunk]}`));
    socket.on('end', () => events.push('end'));
    await once(socket, 'close');
    expect(events).toEqual(['data:7,8', 'end']);
  });

  it('holds data while paused, hands it out through read(), and ends only after it was read', async () => {
    const { url } = await server((peer) => {
      peer.send(Uint8Array.of(1));
      peer.send(Uint8Array.of(2));
      peer.close(1000);
    });
    const socket = socketTo(url);
    socket.pause();
    const data: number[] = [];
    socket.on('data', (chunk: Uint8Array) => data.push(...chunk));
    let ended = false;
    socket.on('end', () => (ended = true));
    socket.connect();
    await once(socket, 'readable');
    await until(() => !socket.writable);
    expect(ended).toBe(false);
    expect([...socket.read()!]).toEqual([1]);
    socket.resume();
    expect(data).toEqual([2]);
    await until(() => ended);
    expect(ended).toBe(true);
  });

  it('turns a dropped WebSocket into an Error with code ECONNRESET, then close', async () => {
    const { url } = await server((peer) => peer.terminate());
    const socket = socketTo(url).connect();
    const events: string[] = [];
    let error: SocketError | undefined;
    socket.on('error', (e: SocketError) => {
      error = e;
      events.push('error');
    });
    socket.on('close', () => events.push('close'));
    await until(() => events.length === 2);
    expect(error).toBeInstanceOf(Error);
    expect(error).toMatchObject({ code: 'ECONNRESET', closeCode: 1006 });
    expect(events).toEqual(['error', 'close']);
  });

  it('reports a bridge that cannot be reached as an Error with code ECONNREFUSED, naming no token', async () => {
    const port = await freePort();
    const socket = socketTo(`ws://127.0.0.1:${port}/v1?token=secret-token`).connect();
    const [error] = await Promise.all([once<SocketError>(socket, 'error'), once(socket, 'close')]);
    expect(error).toMatchObject({ code: 'ECONNREFUSED' });
    expect(error.message).toMatch(
      new RegExp(`^could not open a WebSocket to ws://127\\.0\\.0\\.1:${port}/v1: .*ECONNREFUSED`),
    );
    expect(error.message).not.toContain('secret-token');
  });

  it('says why the bridge refused the upgrade when the WebSocket tells (ws gives the status)', async () => {
    const refusing = createServer((_request, response) => response.writeHead(403).end('origin not allowed'));
    await new Promise<void>((resolve) => refusing.listen(0, '127.0.0.1', resolve));
    try {
      const port = (refusing.address() as AddressInfo).port;
      const socket = socketTo(`ws://127.0.0.1:${port}/v1?token=secret-token`).connect();
      const [error] = await Promise.all([once<SocketError>(socket, 'error'), once(socket, 'close')]);
      expect(error).toMatchObject({
        code: 'ECONNREFUSED',
        message: `could not open a WebSocket to ws://127.0.0.1:${port}/v1: Unexpected server response: 403`,
      });
    } finally {
      refusing.close();
    }
  });

  it('fails a write after end() with EPIPE through the callback and an error event, without throwing', async () => {
    const { url } = await server();
    const socket = socketTo(url).connect();
    await once(socket, 'connect');
    socket.end();
    const errorEvent = once<SocketError>(socket, 'error');
    const callbackError = new Promise<Error | null | undefined>((resolve) => socket.write(Uint8Array.of(1), resolve));
    expect(await callbackError).toMatchObject({ code: 'EPIPE' });
    expect(await errorEvent).toMatchObject({ code: 'EPIPE' });
  });

  it('destroy(error) emits error, then close', async () => {
    const { url } = await server();
    const socket = socketTo(url).connect();
    await once(socket, 'connect');
    const events: string[] = [];
    socket.on('error', (error: Error) => events.push(`error:${error.message}`));
    socket.on('close', () => events.push('close'));
    socket.destroy(new Error('boom'));
    await until(() => events.length === 2);
    expect(events).toEqual(['error:boom', 'close']);
  });

  it('fails with the error a data listener throws, instead of losing it and hanging', async () => {
    const { url } = await server((peer) => peer.send(Uint8Array.of(1, 2, 3)));
    const socket = socketTo(url).connect();
    socket.on('data', () => {
      throw new TypeError('chunk.readUInt32BE is not a function');
    });
    const events: string[] = [];
    socket.on('error', (error: Error) => events.push(`error:${error.message}`));
    socket.on('close', () => events.push('close'));
    await until(() => events.length === 2);
    expect(events).toEqual(['error:chunk.readUInt32BE is not a function', 'close']);
    expect(socket.destroyed).toBe(true);
  });

  it('fails loudly when the WebSocket ignores binaryType and delivers Blobs, instead of dropping bytes', async () => {
    // A WebSocket that keeps delivering Blobs whatever binaryType is set to: a fault no correct
    // implementation produces, made from ws by pinning its binaryType.
    function BlobWebSocket(url: string, protocols: string[], options: object): WebSocket {
      const ws = new WebSocket(url, protocols, options);
      ws.binaryType = 'blob' as never;
      Object.defineProperty(ws, 'binaryType', { get: () => 'blob', set: () => {} });
      return ws;
    }
    const { url } = await server((peer) => peer.send(Uint8Array.of(1, 2, 3)));
    const socket = socketTo(url, { WebSocket: BlobWebSocket as never }).connect();
    const events: string[] = [];
    socket.on('data', () => events.push('data'));
    socket.on('error', (error: Error) => events.push(`error:${error.message}`));
    socket.on('close', () => events.push('close'));
    await until(() => events.length === 2);
    expect(events).toEqual(['error:the WebSocket delivered Blob, not bytes: it ignored binaryType', 'close']);
  });

  it('reports a URL that is not one as an Error with code ERR_INVALID_URL, then close', async () => {
    const socket = socketTo('bridge.example.com/v1').connect();
    const events: string[] = [];
    socket.on('error', (error: SocketError) => events.push(`error:${error.code}:${error.message}`));
    socket.on('close', () => events.push('close'));
    await until(() => events.length === 2);
    expect(events).toEqual([
      expect.stringMatching(/^error:ERR_INVALID_URL:invalid bridge URL: .*Invalid URL/),
      'close',
    ]);
  });

  it("says why a fetch that cannot upgrade (Node's) fails, with code ECONNREFUSED", async () => {
    const { url } = await server();
    const socket = socketTo(`${url}?token=secret-token`, { fetch }).connect();
    const [error] = await Promise.all([once<SocketError>(socket, 'error'), once(socket, 'close')]);
    expect(error).toMatchObject({ code: 'ECONNREFUSED' });
    // Node's fetch refuses the Upgrade header; its cause says so ("invalid upgrade header" in Node 20).
    expect(error.message).toMatch(new RegExp(`^could not open a WebSocket to ${url}: fetch failed: \\w`));
    expect(error.message).not.toContain('secret-token');
  });

  it('sends a keepalive ("k") while nothing else goes out, only once flow control is agreed', async () => {
    const { url, messages } = await server();
    const socket = socketTo(url, { keepAliveMs: 40 }).connect();
    await once(socket, 'connect');
    await until(() => messages.length >= 3);
    expect(messages.slice(0, 3).map(String)).toEqual(['k', 'k', 'k']);
    socket.destroy();

    const plain = await server();
    const withoutFlowControl = socketTo(plain.url, { keepAliveMs: 40, flowControl: false }).connect();
    await once(withoutFlowControl, 'connect');
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(plain.messages).toEqual([]);
    withoutFlowControl.destroy();
  });

  it('sends no keepalive while data goes out anyway', async () => {
    const { url, messages } = await server();
    const socket = socketTo(url, { keepAliveMs: 40 }).connect();
    await once(socket, 'connect');
    for (let i = 0; i < 20; i++) {
      socket.write(Uint8Array.of(i));
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    await until(() => messages.length >= 20);
    expect(messages.map(String)).not.toContain('k');
    socket.destroy();
  });

  it('says so when there is no WebSocket implementation', async () => {
    const global = globalThis as { WebSocket?: unknown };
    const saved = global.WebSocket;
    delete global.WebSocket;
    try {
      const socket = new Socket({ url: 'ws://127.0.0.1:1/v1' }).connect();
      expect(await once<SocketError>(socket, 'error')).toMatchObject({ code: 'ERR_NO_WEBSOCKET' });
    } finally {
      if (saved !== undefined) global.WebSocket = saved;
    }
  });
});

describe('client Socket backpressure', () => {
  it('returns false from write() above the high-water mark, and emits drain once the bytes are out', async () => {
    const { url, messages } = await server();
    const socket = socketTo(url, { highWaterMark: 1000, flowControl: false }).connect();
    await once(socket, 'connect');
    expect(socket.write(new Uint8Array(600))).toBe(true);
    expect(socket.write(new Uint8Array(600))).toBe(false);
    await once(socket, 'drain');
    await until(() => messages.length > 0);
    expect(messages.reduce((n, m) => n + m.length, 0)).toBe(1200);
    socket.destroy();
  });

  it('sends no more than the flow-control window until the bridge echoes its marks', async () => {
    let peer: WebSocket | undefined;
    const { url, binary, texts } = await server((p) => (peer = p));
    const socket = socketTo(url, { maxMessageBytes: 1024 * 1024 }).connect();
    await once(socket, 'connect');
    let drained = false;
    socket.on('drain', () => (drained = true));
    expect(socket.write(new Uint8Array(2 * 1024 * 1024))).toBe(false);
    await until(() => texts.length > 0);
    await new Promise((resolve) => setTimeout(resolve, 100));
    const binaryBytes = () => binary.reduce((n, m) => n + m.length, 0);
    // The window's worth went out, marked; the rest waits for an echo.
    expect(binaryBytes()).toBe(WINDOW_TO_SERVER_BYTES);
    expect(texts).toEqual(['m0']);
    expect(drained).toBe(false);
    // Echo every mark, as the bridge does once PostgreSQL took the bytes: the rest follows.
    peer!.on('message', (data: Buffer, isBinary: boolean) => {
      if (!isBinary && data.toString().startsWith('m')) peer!.send(`a${data.toString().slice(1)}`);
    });
    peer!.send('a0');
    await until(() => drained);
    expect(drained).toBe(true);
    await until(() => binaryBytes() === 2 * 1024 * 1024);
    expect(binaryBytes()).toBe(2 * 1024 * 1024);
    socket.destroy();
  });

  it("echoes the bridge's marks only once the driver has been handed every byte before them", async () => {
    let peer: WebSocket | undefined;
    const { url, texts } = await server((p) => (peer = p));
    const socket = socketTo(url).connect();
    await once(socket, 'connect');
    socket.pause();
    peer!.send(new Uint8Array(1000));
    peer!.send('mXYZ');
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(texts).toEqual([]);
    socket.resume();
    await until(() => texts.length > 0);
    expect(texts).toEqual(['aXYZ']);
    socket.destroy();
  });
});

describe('client Socket: the rest of the net.Socket surface drivers and tls use', () => {
  it('holds writes while corked and sends them together at the last uncork()', async () => {
    const { url, messages } = await server();
    const socket = socketTo(url).connect();
    await once(socket, 'connect');
    socket.cork();
    socket.cork();
    socket.write(Uint8Array.of(1));
    await new Promise((resolve) => setTimeout(resolve, 20));
    socket.write(Uint8Array.of(2));
    socket.uncork();
    expect(socket.writableCorked).toBe(1);
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(messages).toEqual([]);
    socket.uncork();
    await until(() => messages.length > 0);
    expect(messages.map((m) => [...m])).toEqual([[1, 2]]);
    socket.destroy();
  });

  it("emits 'timeout' after the idle time set with setTimeout(), restarted by traffic, and stays open", async () => {
    const { url } = await server((peer) => setTimeout(() => peer.send(Uint8Array.of(1)), 40));
    const socket = socketTo(url).connect();
    await once(socket, 'connect');
    const started = Date.now();
    const fired = new Promise<number>((resolve) => socket.setTimeout(60, () => resolve(Date.now() - started)));
    socket.on('data', () => {});
    expect(await fired).toBeGreaterThanOrEqual(95);
    expect(socket.timeout).toBe(60);
    expect(socket.readyState).toBe('open');
    let again = false;
    socket.on('timeout', () => (again = true));
    socket.setTimeout(0);
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(again).toBe(false);
    socket.destroy();
  });

  it('tells its peer, address, byte counts and ready state as net.Socket does', async () => {
    const { url } = await server((peer) => peer.send(Uint8Array.of(1, 2, 3)));
    const socket = socketTo(url);
    expect([socket.remoteAddress, socket.remotePort]).toEqual([undefined, undefined]);
    socket.connect();
    expect(socket.readyState).toBe('opening');
    await once(socket, 'connect');
    expect(socket.readyState).toBe('open');
    expect([socket.remoteAddress, socket.remotePort, socket.remoteFamily]).toEqual([
      '127.0.0.1',
      Number(new URL(url).port),
      'IPv4',
    ]);
    expect(socket.address()).toEqual({});
    socket.on('data', () => {});
    socket.write(Uint8Array.of(9, 9));
    await until(() => socket.bytesRead === 3);
    expect([socket.bytesRead, socket.bytesWritten]).toEqual([3, 2]);
    socket.destroy();
    await once(socket, 'close');
    expect(socket.readyState).toBe('closed');
  });

  it("emits 'pause' and 'resume' and withholds data between them", async () => {
    let peer!: WebSocket;
    const { url } = await server((p) => (peer = p));
    const socket = socketTo(url).connect();
    await once(socket, 'connect');
    const events: string[] = [];
    for (const event of ['pause', 'resume']) socket.on(event, () => events.push(event));
    socket.on('data', (chunk: Uint8Array) => events.push(`data:${[...chunk]}`));
    socket.pause();
    socket.pause();
    peer.send(Uint8Array.of(5));
    await once(socket, 'readable');
    socket.resume();
    expect(events).toEqual(['pause', 'resume', 'data:5']);
    socket.destroy();
  });

  it("carries Node's TLS (tls.connect({ socket })) end to end", async () => {
    const { createTestCertificates } = await import('../../dev/certs.js');
    const certs = await createTestCertificates();
    const { createServer: createTlsServer, connect: tlsConnect } = await import('node:tls');
    const { connect: tcpConnect } = await import('node:net');
    const echo = createTlsServer({ cert: certs.serverCertPem, key: certs.serverKeyPem }, (s) => s.pipe(s));
    await new Promise<void>((resolve) => echo.listen(0, '127.0.0.1', resolve));
    // The WebSocket peer pipes to the TLS server, as the bridge pipes to PostgreSQL.
    const { url } = await server((peer) => {
      const tcp = tcpConnect((echo.address() as AddressInfo).port, '127.0.0.1');
      tcp.on('data', (chunk) => peer.send(chunk));
      peer.on('message', (data: Buffer) => tcp.write(data));
      peer.on('close', () => tcp.destroy());
    });
    const socket = socketTo(url).connect();
    const tls = tlsConnect({ socket: socket as never, ca: certs.caPem, servername: 'localhost' });
    await new Promise((resolve, reject) => tls.once('secureConnect', resolve).once('error', reject));
    tls.write('hello over TLS');
    const reply = await new Promise<Buffer>((resolve) => tls.once('data', resolve));
    expect(reply.toString()).toBe('hello over TLS');
    tls.destroy();
    echo.close();
  });

  it('fails at once, with ERR_SSL_NOT_OFFERED, a driver that starts TLS after the bridge said N', async () => {
    const { url } = await server((peer) => peer.once('message', () => peer.send(Uint8Array.of(0x4e))));
    const socket = socketTo(url).connect();
    const error = once<SocketError>(socket, 'error');
    socket.write(Uint8Array.of(0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f));
    await once(socket, 'data');
    expect(socket.write(Uint8Array.of(0x16, 0x03, 0x01, 0x00, 0x05))).toBe(false);
    expect((await error).code).toBe('ERR_SSL_NOT_OFFERED');
  });

  it('goes on as usual after N when the driver sends its StartupMessage instead', async () => {
    const { url, binary } = await server((peer) => peer.once('message', () => peer.send(Uint8Array.of(0x4e))));
    const socket = socketTo(url).connect();
    socket.write(Uint8Array.of(0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f));
    await once(socket, 'data');
    socket.write(Uint8Array.of(0, 0, 0, 9, 0, 3, 0, 0, 0));
    await until(() => binary.length === 2);
    expect(socket.destroyed).toBe(false);
    socket.destroy();
  });

  it('tells a failure to open to listeners added a few microtasks after connect(), as postgres.js adds them', async () => {
    const socket = socketTo('ftp://127.0.0.1/v1').connect();
    for (let i = 0; i < 5; i++) await Promise.resolve();
    const events: string[] = [];
    socket.on('error', (error: SocketError) => events.push(error.code));
    await once(socket, 'close');
    expect(events).toEqual(['ERR_INVALID_URL']);
  });
});

describe('client Socket: the StartupMessage in the upgrade', () => {
  /** A bridge stand-in that answers with `choose(offered)` and records what it was offered. */
  async function choosingServer(choose: (offered: string[]) => string) {
    const wss = new WebSocketServer({
      host: '127.0.0.1',
      port: 0,
      handleProtocols: (protocols: Set<string>) => choose([...protocols]),
    });
    await new Promise((resolve) => wss.once('listening', resolve));
    servers.push(wss);
    const offered: string[][] = [];
    const binary: Buffer[] = [];
    const texts: string[] = [];
    wss.on('connection', (peer, request) => {
      offered.push((request.headers['sec-websocket-protocol'] ?? '').split(',').map((p) => p.trim()));
      peer.on('message', (data: Buffer, isBinary: boolean) =>
        isBinary ? binary.push(data) : texts.push(data.toString()),
      );
    });
    return { url: `ws://127.0.0.1:${(wss.address() as AddressInfo).port}/v1`, offered, binary, texts };
  }

  const startup = startupMessage({ user: 'postgres', database: 'postgres' });
  const binaryBytes = (binary: Buffer[]) => binary.reduce((n, m) => n + m.length, 0);

  it("emits 'connect' before the WebSocket exists, and offers the driver's first write when it is a StartupMessage", async () => {
    const { url, offered, binary, texts } = await choosingServer(() => FLOW_CONTROL_STARTUP_PROTOCOL);
    const socket = new Socket({ url, WebSocket: WebSocket as never, maxMessageBytes: 1024 * 1024 }).connect();
    await once(socket, 'connect');
    expect(offered).toEqual([]);
    socket.write(startup);
    await until(() => offered.length > 0);
    expect(offered[0]).toEqual([
      FLOW_CONTROL_STARTUP_PROTOCOL,
      FLOW_CONTROL_PROTOCOL,
      `${STARTUP_PROTOCOL_PREFIX}${encodeBase64Url(startup)}`,
    ]);
    // Taken: not sent again, and counted in the window as the bridge counts it.
    socket.write(new Uint8Array(WINDOW_TO_SERVER_BYTES));
    await until(() => texts.length > 0);
    expect(binaryBytes(binary)).toBe(WINDOW_TO_SERVER_BYTES - startup.length);
    expect(binary[0]!.length).toBe(WINDOW_TO_SERVER_BYTES - startup.length);
    expect(socket.bytesWritten).toBe(startup.length + WINDOW_TO_SERVER_BYTES);
    socket.destroy();
  });

  it('sends the StartupMessage as its first message to a bridge that does not take it from the upgrade', async () => {
    const { url, offered, binary } = await choosingServer(() => FLOW_CONTROL_PROTOCOL);
    const socket = new Socket({ url, WebSocket: WebSocket as never }).connect();
    await once(socket, 'connect');
    socket.write(startup);
    socket.write(Uint8Array.of(1, 2, 3));
    await until(() => binary.length > 0);
    expect(offered[0]![0]).toBe(FLOW_CONTROL_STARTUP_PROTOCOL);
    expect([...binary[0]!]).toEqual([...startup, 1, 2, 3]);
    socket.destroy();
  });

  it('offers nothing inline when the first write is not a StartupMessage, or too long for a header', async () => {
    const { url, offered, binary } = await choosingServer((protocols) => protocols[0]!);
    const ssl = new Socket({ url, WebSocket: WebSocket as never }).connect();
    await once(ssl, 'connect');
    ssl.write(sslRequest());
    await until(() => binary.length > 0);
    expect(offered[0]).toEqual([FLOW_CONTROL_PROTOCOL]);
    expect([...binary[0]!]).toEqual([...sslRequest()]);
    ssl.destroy();

    const long = startupMessage({ user: 'postgres', application_name: 'x'.repeat(4000) });
    const big = new Socket({ url, WebSocket: WebSocket as never }).connect();
    await once(big, 'connect');
    big.write(long);
    await until(() => binary.length > 1);
    expect(offered[1]).toEqual([FLOW_CONTROL_PROTOCOL]);
    expect(binary[1]!.length).toBe(long.length);
    big.destroy();
  });

  it('opens the WebSocket a task after connect() when the driver writes nothing', async () => {
    const { url, offered } = await choosingServer(() => FLOW_CONTROL_PROTOCOL);
    const socket = new Socket({ url, WebSocket: WebSocket as never }).connect();
    await until(() => offered.length > 0);
    expect(offered[0]).toEqual([FLOW_CONTROL_PROTOCOL]);
    socket.destroy();
  });
});
