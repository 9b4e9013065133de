import { describe, expect, it } from 'vitest';
import { edgeLogin, type LoginConnection } from '../../worker/edge-login.js';
import { BridgeError } from '../../worker/protocol/errors.js';
import { ScramServer } from '../support/scram-server.js';
import { Bytes, concat, message, readMessages } from '../support/wire.js';

const RANGE = { minIterations: 4096, maxIterations: 100_000 };
const auth = (code: number, body: Uint8Array = new Uint8Array()) =>
  message('R', new Bytes().int32(code).raw(body).build());
const AFTER_OK = concat(
  message('S', new Bytes().cstring('server_version').cstring('18.4').build()),
  message('K', new Bytes().int32(42).int32(7).build()),
  message('Z', Uint8Array.of(0x49)),
);

/**
 * A socket to a SCRAM server written with node:crypto, whose every reply reaches the bridge in
 * chunks of `chunk` bytes (0: whole).
 */
function scramSocket(password: string, chunk: number, tail = AFTER_OK) {
  const server = new ScramServer(password);
  const toServer: Uint8Array[] = [];
  let deliver!: (bytes: Uint8Array) => void;
  let end!: () => void;
  const readable = new ReadableStream<Uint8Array>({
    start(controller) {
      end = () => controller.close();
      deliver = (bytes) => {
        for (let at = 0; at < bytes.length; at += chunk || bytes.length) {
          controller.enqueue(bytes.slice(at, at + (chunk || bytes.length)));
        }
      };
    },
  });
  const writable = new WritableStream<Uint8Array>({
    write(bytes) {
      toServer.push(bytes);
      const [reply] = readMessages(bytes);
      const body = Buffer.from(reply!.body);
      if (toServer.length === 1) {
        const data = body.subarray(body.indexOf(0) + 5).toString('utf8');
        deliver(auth(11, new Bytes().raw(Buffer.from(server.first(data))).build()));
      } else {
        const signature = server.final(body.toString('utf8'));
        deliver(
          signature
            ? concat(auth(12, new Bytes().raw(Buffer.from(`v=${signature}`)).build()), auth(0), tail)
            : message('E', new Bytes().byte(0x43).cstring('28P01').byte(0).build()),
        );
        end();
      }
    },
  });
  deliver(auth(10, new Bytes().cstring('SCRAM-SHA-256').byte(0).build()));
  const socket: LoginConnection = { reader: readable.getReader(), writer: writable.getWriter() };
  return { socket, toServer };
}

describe('edgeLogin', () => {
  it('logs in however the server bytes are split, resolving with AuthenticationOk and what came with it', async () => {
    for (const chunk of [0, 1, 2, 3, 5, 7, 13, 64]) {
      const { socket } = scramSocket('pencil', chunk);
      const forClient = await edgeLogin(socket, { role: 'app', password: 'pencil' }, RANGE);
      // What the login did not read stays in the socket, for the relay.
      const later: Uint8Array[] = [];
      for (let read = await socket.reader.read(); !read.done; read = await socket.reader.read()) later.push(read.value);
      expect(Buffer.from(forClient.subarray(0, 9)).equals(Buffer.from(auth(0))), `chunk ${chunk}`).toBe(true);
      expect(Buffer.from(concat(forClient, ...later)).equals(Buffer.from(concat(auth(0), AFTER_OK)))).toBe(true);
    }
  });

  it("resolves with PostgreSQL's ErrorResponse when the password is wrong", async () => {
    const { socket } = scramSocket('pencil', 0);
    const forClient = await edgeLogin(socket, { role: 'app', password: 'not-pencil' }, RANGE);
    expect(readMessages(forClient).map((m) => m.type)).toEqual(['E']);
  });

  it('rejects with a BridgeError when the server closes in the middle', async () => {
    const socket: LoginConnection = {
      reader: new ReadableStream<Uint8Array>({
        start: (controller) => {
          controller.enqueue(auth(10, new Bytes().cstring('SCRAM-SHA-256').byte(0).build()).slice(0, 7));
          controller.close();
        },
      }).getReader(),
      writer: new WritableStream<Uint8Array>().getWriter(),
    };
    await expect(edgeLogin(socket, { role: 'app', password: 'pencil' }, RANGE)).rejects.toMatchObject({
      code: 'SERVER_CONNECTION_LOST',
    });
  });

  it('rejects a message length the login cannot hold, without waiting for its bytes', async () => {
    const socket: LoginConnection = {
      reader: new ReadableStream<Uint8Array>({
        start: (controller) => controller.enqueue(new Bytes().byte(0x52).int32(0x7fffffff).build()),
      }).getReader(),
      writer: new WritableStream<Uint8Array>().getWriter(),
    };
    const error = await edgeLogin(socket, { role: 'app', password: 'pencil' }, RANGE).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(BridgeError);
    expect(error).toMatchObject({ code: 'SERVER_AUTH_FAILED', sqlState: '08001' });
  });
});
