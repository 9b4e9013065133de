import { createServer, type Server, type Socket } from 'node:net';
import { listenOnLoopback } from './loopback.js';
import { ScramServer } from './scram-server.js';
import { Bytes, concat, message, readMessages } from './wire.js';

/**
 * How the fake answers a login: `honest` completes SCRAM-SHA-256 and says ReadyForQuery; the
 * others are the ways a server that is not the database (or is broken) could answer.
 */
export type FakeLogin =
  | 'honest'
  | 'ok-straight-away'
  | 'ok-without-final'
  | 'wrong-signature'
  | 'cleartext'
  | 'md5'
  | { readonly iterations: number };

export interface FakeConnection {
  /** The StartupMessage's parameters. */
  readonly startup: Record<string, string>;
  /** Every message the bridge sent after the StartupMessage, as type letters ('p' for SASL and passwords). */
  readonly messages: string[];
  /** Resolves when the connection is closed. */
  readonly closed: Promise<void>;
}

const auth = (code: number, body: Uint8Array = new Uint8Array()) =>
  message('R', new Bytes().int32(code).raw(body).build());
const text = (value: string) => Uint8Array.from(Buffer.from(value, 'utf8'));
const READY = concat(
  message('S', new Bytes().cstring('server_version').cstring('18.4').build()),
  message('S', new Bytes().cstring('client_encoding').cstring('UTF8').build()),
  message('K', new Bytes().int32(4242).int32(1).build()),
  message('Z', Uint8Array.of(0x49)),
);

/**
 * A fake PostgreSQL on loopback, plain TCP, that speaks just enough of the startup phase to log a
 * client in with SCRAM-SHA-256 (honestly or not, as `login` says) and records what it was sent.
 */
export async function startFakePostgres(password: string, login: FakeLogin) {
  const connections: FakeConnection[] = [];
  const sockets = new Set<Socket>();
  const server: Server = createServer((socket) => {
    sockets.add(socket);
    const record = { startup: {} as Record<string, string>, messages: [] as string[] };
    connections.push({ ...record, closed: new Promise((resolve) => socket.once('close', () => resolve())) });
    const scram = new ScramServer(password, typeof login === 'object' ? login.iterations : 4096);
    let buffer = Buffer.alloc(0);
    let started = false;
    const reply = (bytes: Uint8Array) => socket.write(bytes);
    socket.on('error', () => {});
    socket.on('data', (chunk) => {
      buffer = Buffer.concat([buffer, chunk]);
      if (!started) {
        if (buffer.length < 4 || buffer.length < buffer.readUInt32BE(0)) return;
        const length = buffer.readUInt32BE(0);
        const fields = buffer
          .subarray(8, length - 1)
          .toString('utf8')
          .split('\0');
        for (let i = 0; i + 1 < fields.length; i += 2) record.startup[fields[i]!] = fields[i + 1]!;
        buffer = buffer.subarray(length);
        started = true;
        if (login === 'ok-straight-away') reply(concat(auth(0), READY));
        else if (login === 'cleartext') reply(auth(3));
        else if (login === 'md5') reply(auth(5, Uint8Array.of(1, 2, 3, 4)));
        else reply(auth(10, new Bytes().cstring('SCRAM-SHA-256').byte(0).build()));
      }
      let whole = 0;
      while (whole + 5 <= buffer.length && whole + 1 + buffer.readUInt32BE(whole + 1) <= buffer.length) {
        whole += 1 + buffer.readUInt32BE(whole + 1);
      }
      const messages = readMessages(buffer.subarray(0, whole));
      buffer = buffer.subarray(whole);
      for (const { type, body } of messages) {
        record.messages.push(type);
        if (type !== 'p') continue;
        const data = Buffer.from(body);
        if (record.messages.filter((t) => t === 'p').length === 1) {
          reply(auth(11, text(scram.first(data.subarray(data.indexOf(0) + 5).toString('utf8')))));
        } else if (login === 'ok-without-final') {
          reply(concat(auth(0), READY));
        } else {
          const signature = scram.final(data.toString('utf8'));
          const sent = login === 'wrong-signature' ? Buffer.alloc(32).toString('base64') : signature;
          reply(signature ? concat(auth(12, text(`v=${sent}`)), auth(0), READY) : message('E', fatal('28P01')));
        }
      }
    });
  });
  return { connections, ...(await listenOnLoopback(server, sockets)) };
}

function fatal(code: string): Uint8Array {
  return new Bytes().byte(0x53).cstring('FATAL').byte(0x43).cstring(code).byte(0x4d).cstring('no').byte(0).build();
}
