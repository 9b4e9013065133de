import { describe, expect, it } from 'vitest';
import { ServerWrites } from '../../worker/server-writes.js';

/** A TCP writer that takes each write only when told to, as one toward a server that stopped reading. */
function heldWriter() {
  const writes: Array<{ bytes: Uint8Array; take: () => void }> = [];
  return {
    writes,
    write(bytes: Uint8Array): Promise<void> {
      return new Promise((resolve) => writes.push({ bytes: bytes.slice(), take: resolve }));
    },
    /** Takes every write handed over so far, and waits for their callbacks. */
    async takeAll(): Promise<void> {
      for (const write of writes.splice(0)) write.take();
      await new Promise((resolve) => setTimeout(resolve, 0));
    },
  };
}

function setUp() {
  const writer = heldWriter();
  const taken: number[] = [];
  const writes = new ServerWrites(
    (bytes) => taken.push(bytes),
    (error) => {
      throw error;
    },
  );
  return { writer, writes, taken };
}

describe('ServerWrites', () => {
  it('keeps at most eight writes in flight, however many one-byte messages arrive, and loses none', async () => {
    const { writer, writes, taken } = setUp();
    writes.start(writer);
    const sent = Uint8Array.from({ length: 100_000 }, (_, i) => i % 251);
    for (let i = 0; i < sent.length; i++) writes.add(sent.subarray(i, i + 1));
    expect(writer.writes.length).toBe(8);
    expect(writes.pending).toBe(sent.length);
    const received: Uint8Array[] = [];
    while (writer.writes.length > 0) {
      expect(writer.writes.length).toBeLessThanOrEqual(8);
      received.push(...writer.writes.map((write) => write.bytes));
      await writer.takeAll();
    }
    // The first eight went out as they came; the rest in 16 KiB blocks, not one write a byte.
    expect(received.length).toBe(8 + Math.ceil((sent.length - 8) / (16 * 1024)));
    expect(Buffer.concat(received)).toEqual(Buffer.from(sent));
    expect(writes.pending).toBe(0);
    expect(taken.reduce((sum, bytes) => sum + bytes, 0)).toBe(sent.length);
  });

  it('writes a large piece as it is, and keeps the order of large and small pieces', async () => {
    const { writer, writes } = setUp();
    const pieces = [new Uint8Array(10).fill(1), new Uint8Array(5000).fill(2), new Uint8Array(3).fill(3)];
    for (const piece of pieces) writes.add(piece);
    expect(writer.writes.length).toBe(0); // no connection yet: all of it waits
    writes.start(writer);
    expect(writer.writes.map((write) => write.bytes.length)).toEqual([10, 5000, 3]);
    expect(Buffer.concat(writer.writes.map((write) => write.bytes))).toEqual(Buffer.concat(pieces));
  });

  it('hands everything still waiting to the writer at the end, so a Terminate written next follows it', () => {
    const { writer, writes } = setUp();
    writes.start(writer);
    for (let i = 0; i < 20; i++) writes.add(new Uint8Array(2000).fill(i));
    expect(writer.writes.length).toBe(8);
    writes.flushAll();
    expect(writer.writes.length).toBe(20);
    expect(writer.writes.map((write) => write.bytes[0])).toEqual(Array.from({ length: 20 }, (_, i) => i));
  });
});
