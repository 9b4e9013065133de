import { afterEach, describe, expect, it, vi } from 'vitest';
import { ClientChannel, RELAY_BUFFER_BYTES } from '../../worker/client-channel.js';
import { BackendBoundaries } from '../../worker/protocol/backend-boundaries.js';
import { READ_BYTES, relayServerToClient, STREAMING_READ_BYTES } from '../../worker/relay.js';
import { concat, message } from '../support/wire.js';

/** PostgreSQL's side: reads are answered from `chunks` at once (as much as fits), then wait until `more()` or `end()`. */
function fakeServer(chunks: Uint8Array[]) {
  let reads = 0;
  let wake: (() => void) | null = null;
  const readInto = async (view: Uint8Array) => {
    reads += 1;
    if (chunks.length === 0) await new Promise<void>((resolve) => (wake = resolve));
    let chunk = chunks.shift();
    if (!chunk) return { done: true as const, value: undefined };
    if (chunk.length > view.length) {
      // As a socket does: no more than the view holds; the rest waits for the next read.
      chunks.unshift(chunk.subarray(view.length));
      chunk = chunk.subarray(0, view.length);
    }
    view.set(chunk);
    return { done: false as const, value: view.subarray(0, chunk.length) };
  };
  return {
    readInto,
    reads: () => reads,
    more: (...next: Uint8Array[]) => {
      chunks.push(...next);
      wake?.();
    },
    end: () => wake?.(),
  };
}

/**
 * PostgreSQL's side as workerd 1.20261117 reads it: each read takes as much of what is waiting as
 * the buffer offered holds; reads wait while nothing is. Records the size of each buffer offered.
 */
function streamingServer(waiting: Uint8Array) {
  const offered: number[] = [];
  const returned: Uint8Array[] = [];
  let ended = false;
  let wake: (() => void) | null = null;
  const readInto = async (view: Uint8Array) => {
    offered.push(view.length);
    if (waiting.length === 0 && !ended) await new Promise<void>((resolve) => (wake = resolve));
    if (waiting.length === 0) return { done: true as const, value: undefined };
    const take = Math.min(view.length, waiting.length);
    view.set(waiting.subarray(0, take));
    waiting = waiting.subarray(take);
    // As a BYOB read does: the buffer comes back as a new one, and the view offered is detached.
    const buffer = structuredClone(view.buffer, { transfer: [view.buffer] });
    const value = new Uint8Array(buffer, view.byteOffset, take);
    returned.push(value);
    return { done: false as const, value };
  };
  return {
    readInto,
    offered,
    returned,
    more: (bytes: Uint8Array) => {
      waiting = bytes;
      wake?.();
    },
    end: () => {
      ended = true;
      wake?.();
    },
  };
}

function relay(chunks: Uint8Array[]) {
  return relayFrom(fakeServer(chunks));
}

function relayFrom<Server extends Parameters<typeof relayServerToClient>[0]>(server: Server, room = () => Infinity) {
  const sent: Uint8Array[] = [];
  const ws = { send: (data: Uint8Array | string) => typeof data !== 'string' && sent.push(data), close() {} };
  const channel = new ClientChannel(ws as unknown as WebSocket, false);
  const boundaries = new BackendBoundaries();
  const done = relayServerToClient(server, channel, {
    readable: room,
    roomChanged: () => Promise.resolve(),
    isClosed: () => false,
    overBudget: () => false,
    take: (chunk, given) => {
      const urgent = boundaries.scan(chunk);
      channel.add(chunk, given);
      return urgent;
    },
  });
  return { sent, server, done };
}

/**
 * The relay with flow control toward the client, its room and budget as the test says; records
 * binary messages and the ids of marks, and lets the test wake the relay as an echo would.
 */
function relayWithFlowControl(
  server: Parameters<typeof relayServerToClient>[0],
  options: { window?: number; readable: (channel: ClientChannel) => number; overBudget: () => boolean },
) {
  const sent: Uint8Array[] = [];
  const marks: string[] = [];
  const ws = {
    send: (data: Uint8Array | string) => (typeof data === 'string' ? marks.push(data.slice(1)) : sent.push(data)),
    close() {},
  };
  const channel = new ClientChannel(ws as unknown as WebSocket, true, options.window);
  let wakeRelay: () => void = () => {};
  const start = () =>
    relayServerToClient(server, channel, {
      readable: () => options.readable(channel),
      roomChanged: () => new Promise<void>((resolve) => (wakeRelay = resolve)),
      isClosed: () => false,
      overBudget: options.overBudget,
      take: (chunk, given) => {
        channel.add(chunk, given);
        return false;
      },
    });
  return { sent, marks, channel, start, wake: () => wakeRelay() };
}

const turn = () => new Promise((resolve) => setTimeout(resolve, 5));
const dataRows = (count: number, size: number) =>
  concat(...Array.from({ length: count }, (_, i) => message('D', new Uint8Array(size - 5).fill(i % 251))));
/** `bytes` cut into reads of at most 4 KiB, as workerd's TCP reads come. */
const reads = (bytes: Uint8Array) =>
  Array.from({ length: Math.ceil(bytes.length / 4096) }, (_, i) => bytes.slice(i * 4096, (i + 1) * 4096));

afterEach(() => vi.restoreAllMocks());

describe('relayServerToClient', () => {
  it('gathers reads into messages of RELAY_BUFFER_BYTES, with far fewer timers than reads, losing nothing', async () => {
    const timers = vi.spyOn(globalThis, 'setTimeout');
    const rows = dataRows(200, 1000);
    const { sent, server, done } = relay(reads(rows));
    await turn();
    server.end();
    await done;
    expect(sent.slice(0, -1).every((m) => m.length === RELAY_BUFFER_BYTES)).toBe(true);
    expect(Buffer.concat(sent).equals(Buffer.from(rows))).toBe(true);
    expect(timers.mock.calls.length).toBeLessThan(server.reads() / 4);
  });

  it('sends at once after a ReadyForQuery, and what was gathered once the reads run dry', async () => {
    const ready = message('Z', Uint8Array.of(0x49));
    const { sent, server, done } = relay([concat(dataRows(2, 100), ready)]);
    await Promise.resolve();
    await Promise.resolve();
    expect(sent.map((m) => m.length)).toEqual([206]);
    server.more(dataRows(3, 100));
    await turn();
    expect(sent.map((m) => m.length)).toEqual([206, 300]);
    server.end();
    await done;
  });

  it('never writes into a message once it was sent, though the same read buffer is used for every read', async () => {
    const rows = dataRows(300, 1000);
    const { sent, server, done } = relay(reads(rows));
    await turn();
    const copies = sent.map((m) => m.slice());
    server.more(...reads(dataRows(100, 1000)));
    await turn();
    server.end();
    await done;
    copies.forEach((copy, i) => expect(Buffer.from(sent[i]!).equals(Buffer.from(copy))).toBe(true));
  });

  it('offers the large buffer while a result streams, and the small one once it ends or reads bring little', async () => {
    const result = dataRows(200, 1000);
    const { sent, server, done } = relayFrom(streamingServer(result));
    await turn();
    const trickle = dataRows(3, 100);
    server.more(trickle);
    await turn();
    const ready = message('Z', Uint8Array.of(0x49));
    const last = concat(dataRows(10, 1000), ready);
    server.more(last);
    await turn();
    server.end();
    await done;
    expect(Buffer.concat(sent).equals(Buffer.concat([result, trickle, last]))).toBe(true);
    expect(server.offered).toEqual([
      // 200,000 bytes: a full small read, so a large one next, asking only for what the message
      // lacks (61,440): the message goes out full;
      READ_BYTES,
      STREAMING_READ_BYTES - READ_BYTES,
      // two full reads, each a message as it is; the next one brings the rest (3,392): little,
      STREAMING_READ_BYTES,
      STREAMING_READ_BYTES,
      STREAMING_READ_BYTES,
      // so a small one waits, and brings 300 bytes; a small one takes 4 KiB of the next 10,006,
      // much, so a large one asks for what the message lacks and takes the rest,
      READ_BYTES,
      READ_BYTES,
      STREAMING_READ_BYTES - READ_BYTES,
      // which ends in a ReadyForQuery: small again.
      READ_BYTES,
    ]);
  });

  it('sends a read that fills a message as it is, without copying it, and never reads into it again', async () => {
    const result = dataRows(400, 1000);
    const { sent, server, done } = relayFrom(streamingServer(result));
    await turn();
    // 400,000 bytes: the first small read's 4 KiB and the next read's 61,440 copied into one
    // message, five reads of a full message each sent as it is, and the rest once the reads run dry.
    expect(sent.map((m) => m.length)).toEqual([...Array<number>(6).fill(RELAY_BUFFER_BYTES), 400_000 - 6 * 65_536]);
    expect(sent.map((m) => server.returned.includes(m))).toEqual([false, true, true, true, true, true, false]);
    const copies = sent.map((m) => m.slice());
    const more = dataRows(200, 1000);
    server.more(more);
    await turn();
    server.end();
    await done;
    copies.forEach((copy, i) => expect(Buffer.from(sent[i]!).equals(Buffer.from(copy))).toBe(true));
    expect(Buffer.concat(sent).equals(Buffer.concat([result, more]))).toBe(true);
  });

  it('waits while the isolate is over its budget, flushing and marking what it sent, and reads on after', async () => {
    const rows = dataRows(20, 1000);
    let room = 0;
    const server = streamingServer(rows);
    const { sent, marks, channel, start, wake } = relayWithFlowControl(server, {
      readable: () => room,
      overBudget: () => room === 0,
    });
    channel.add(new Uint8Array(100)); // gathered before the window closed
    const done = start();
    await turn();
    expect(server.offered).toEqual([]);
    expect(sent.map((m) => m.length)).toEqual([100]);
    expect(marks).toHaveLength(1); // the mark covering it, whose echo frees all the session holds
    room = 64 * 1024;
    wake();
    await turn();
    server.end();
    wake();
    await done;
    expect(Buffer.concat(sent).equals(Buffer.concat([new Uint8Array(100), rows]))).toBe(true);
  });

  it('stops at a full window with no mark of its own, and reads on when a quarter-window mark is echoed', async () => {
    const window = 256 * 1024;
    const rows = dataRows(1000, 1000);
    const server = streamingServer(rows);
    const { sent, marks, channel, start, wake } = relayWithFlowControl(server, {
      window,
      readable: (channel) => channel.room,
      overBudget: () => false,
    });
    const done = start();
    await turn();
    // A window's worth went out, each quarter followed by its mark, and nothing more.
    expect(sent.reduce((n, m) => n + m.length, 0)).toBe(window);
    expect(marks).toHaveLength(4);
    // The client echoes the first quarter's mark: a quarter more goes out, marked in turn.
    expect(channel.toClient!.echoed(marks[0]!)).toBe(true);
    wake();
    await turn();
    expect(sent.reduce((n, m) => n + m.length, 0)).toBe(window + window / 4);
    expect(marks).toHaveLength(5);
    // Echoes as the client consumes: the rest of the result goes through.
    while (sent.reduce((n, m) => n + m.length, 0) < rows.length) {
      expect(channel.toClient!.echoed(marks.at(-1)!)).toBe(true);
      wake();
      await turn();
    }
    server.end();
    wake();
    await done;
    expect(Buffer.concat(sent).equals(Buffer.from(rows))).toBe(true);
  });

  it('never offers a read more than the window has room for', async () => {
    const result = dataRows(200, 1000);
    let room = 10_000;
    const { sent, server, done } = relayFrom(streamingServer(result), () => {
      const now = room;
      room = Math.max(1000, room - 3000);
      return now;
    });
    await turn();
    server.end();
    await done;
    expect(Buffer.concat(sent).equals(Buffer.from(result))).toBe(true);
    expect(server.offered.slice(0, 4)).toEqual([READ_BYTES, 7000, 4000, 1000]);
    expect(Math.max(...server.offered.slice(3))).toBe(1000);
  });
});
