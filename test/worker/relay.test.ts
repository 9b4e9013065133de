import { afterEach, describe, expect, it, vi } from 'vitest';
import { ClientChannel, RELAY_BUFFER_BYTES } from '../../worker/client-channel.js';
import { BackendBoundaries } from '../../worker/protocol/backend-boundaries.js';
import { relayServerToClient } from '../../worker/relay.js';
import { concat, message } from '../support/wire.js';

/** PostgreSQL's side: reads are answered from `chunks` at once, then wait until `more()` or `end()`. */
function fakeServer(chunks: Uint8Array[]) {
  let reads = 0;
  let wake: (() => void) | null = null;
  const readInto = async (view: Uint8Array) => {
    reads += 1;
    if (chunks.length === 0) await new Promise<void>((resolve) => (wake = resolve));
    const chunk = chunks.shift();
    if (!chunk) return { done: true as const, value: undefined };
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

function relay(chunks: Uint8Array[]) {
  const sent: Uint8Array[] = [];
  const ws = { send: (data: Uint8Array | string) => typeof data !== 'string' && sent.push(data), close() {} };
  const channel = new ClientChannel(ws as unknown as WebSocket, false);
  const boundaries = new BackendBoundaries();
  const server = fakeServer(chunks);
  const done = relayServerToClient(server, channel, {
    mayRead: () => true,
    roomChanged: () => Promise.resolve(),
    isClosed: () => false,
    take: (chunk) => {
      const urgent = boundaries.scan(chunk);
      channel.add(chunk);
      return urgent;
    },
  });
  return { sent, server, done };
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
});
