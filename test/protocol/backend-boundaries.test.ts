import { describe, expect, it } from 'vitest';
import { BackendBoundaries } from '../../worker/protocol/backend-boundaries.js';
import { Bytes, concat, message } from '../support/wire.js';

const dataRow = message('D', new Bytes().int16(1).int32(3).raw([0x61, 0x62, 0x63]).build());
const commandComplete = message('C', new Bytes().cstring('SELECT 1').build());
const readyForQuery = message('Z', Uint8Array.of(0x49));
const response = concat(message('T', new Uint8Array(10)), dataRow, commandComplete, readyForQuery);

describe('BackendBoundaries', () => {
  it('asks for a flush exactly when the bytes end right after ReadyForQuery, however they are split', () => {
    for (let at = 1; at < response.length; at++) {
      const boundaries = new BackendBoundaries();
      expect(boundaries.scan(response.subarray(0, at))).toBe(false);
      expect(boundaries.scan(response.subarray(at))).toBe(true);
      expect(boundaries.atBoundary).toBe(true);
      expect(boundaries.lastMessageType).toBe(0x5a);
    }
  });

  it('knows when it stands inside a message', () => {
    const boundaries = new BackendBoundaries();
    boundaries.scan(dataRow.subarray(0, 3));
    expect(boundaries.atBoundary).toBe(false);
    boundaries.scan(dataRow.subarray(3, 8));
    expect(boundaries.atBoundary).toBe(false);
    boundaries.scan(dataRow.subarray(8));
    expect(boundaries.atBoundary).toBe(true);
    expect(boundaries.lastMessageType).toBe(0x44);
  });

  it.each([
    ['an authentication request', message('R', new Bytes().int32(10).cstring('SCRAM-SHA-256').byte(0).build())],
    ['CopyInResponse', message('G', new Bytes().byte(0).int16(0).build())],
    ['an ErrorResponse', message('E', new Bytes().byte(0x53).cstring('ERROR').byte(0).build())],
    ['a NotificationResponse', message('A', new Bytes().int32(1).cstring('chan').cstring('hi').build())],
    ['PortalSuspended', message('s')],
  ])('flushes after %s, which the client must see before the server says more', (_, bytes) => {
    expect(new BackendBoundaries().scan(bytes)).toBe(true);
  });

  it('does not flush after rows or CommandComplete alone', () => {
    expect(new BackendBoundaries().scan(concat(dataRow, commandComplete))).toBe(false);
  });
});

describe('what the session reads off the server stream', () => {
  const key = message('K', new Bytes().int32(4242).raw(new Uint8Array(32).fill(7)).build());
  const inTransaction = message('Z', Uint8Array.of(0x54));
  const copyIn = message('G', new Bytes().byte(0).int16(1).int16(0).build());
  const stream = concat(key, readyForQuery, dataRow, commandComplete, inTransaction, copyIn);

  it('counts ReadyForQuery and CopyInResponse messages, keeps the last status and the BackendKeyData, however split', () => {
    for (let at = 0; at <= stream.length; at++) {
      for (let second = at; second <= stream.length; second += 7) {
        const boundaries = new BackendBoundaries();
        boundaries.scan(stream.subarray(0, at));
        boundaries.scan(stream.subarray(at, second));
        boundaries.scan(stream.subarray(second));
        expect(boundaries.readyForQueryCount).toBe(2);
        expect(boundaries.copyInResponseCount).toBe(1);
        expect(boundaries.transactionStatus).toBe(0x54);
        expect([...boundaries.backendKeyData!]).toEqual([...key.subarray(5)]);
      }
    }
  });

  it('knows whether the server is in COPY FROM STDIN: from CopyInResponse to CommandComplete or ErrorResponse', () => {
    const copyIn = message('G', new Bytes().byte(0).int16(1).int16(0).build());
    const error = message('E', new Bytes().byte(0x53).cstring('ERROR').byte(0).build());
    const boundaries = new BackendBoundaries();
    boundaries.scan(copyIn);
    expect(boundaries.inCopyIn).toBe(true);
    boundaries.scan(commandComplete);
    expect(boundaries.inCopyIn).toBe(false);
    boundaries.scan(concat(copyIn, error));
    expect(boundaries.inCopyIn).toBe(false);
    boundaries.scan(concat(readyForQuery, copyIn));
    expect(boundaries.inCopyIn).toBe(true);
    expect(boundaries.copyInResponseCount).toBe(3);
  });

  it('has seen neither before they arrive', () => {
    const boundaries = new BackendBoundaries();
    boundaries.scan(concat(dataRow, commandComplete));
    expect(boundaries.readyForQueryCount).toBe(0);
    expect(boundaries.copyInResponseCount).toBe(0);
    expect(boundaries.transactionStatus).toBe(-1);
    expect(boundaries.backendKeyData).toBeNull();
  });

  it('does not keep a BackendKeyData longer than any key PostgreSQL sends', () => {
    const boundaries = new BackendBoundaries();
    boundaries.scan(message('K', new Uint8Array(4 + 257)));
    expect(boundaries.backendKeyData).toBeNull();
    expect(boundaries.atBoundary).toBe(true);
  });
});
