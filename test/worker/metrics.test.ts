import { describe, expect, it } from 'vitest';
import { MAX_INDEX_BYTES, sessionDataPoint, type SessionSummary } from '../../worker/metrics.js';

const summary = (target: string): SessionSummary => ({
  target,
  user: 'app',
  database: 'shop',
  durationMs: 1234,
  bytesToServer: 500,
  bytesToClient: 9000,
  frames: 7,
  closeCode: 1000,
  closeReason: 'client closed the connection',
});

const utf8 = (text: string) => new TextEncoder().encode(text).length;

describe('the Analytics Engine data point of a session', () => {
  it('indexes by target and carries the names as blobs and the counts as doubles', () => {
    expect(sessionDataPoint(summary('db.internal:5432'))).toEqual({
      indexes: ['db.internal:5432'],
      blobs: ['db.internal:5432', 'app', 'shop', 'client closed the connection'],
      doubles: [1234, 500, 9000, 7, 1000],
    });
  });

  it('cuts an index over 96 bytes, which Analytics Engine would drop, keeping the whole target in a blob', () => {
    const long = `${'a'.repeat(63)}.${'b'.repeat(63)}.example.com:5432`;
    const point = sessionDataPoint(summary(long));
    expect(utf8(point.indexes[0]!)).toBe(MAX_INDEX_BYTES);
    expect(long.startsWith(point.indexes[0]!)).toBe(true);
    expect(point.blobs[0]).toBe(long);
  });

  it('never splits a character when cutting', () => {
    const point = sessionDataPoint(summary('é'.repeat(60)));
    expect(point.indexes[0]).toBe('é'.repeat(48));
    const odd = sessionDataPoint(summary(`x${'é'.repeat(60)}`));
    expect(odd.indexes[0]).toBe(`x${'é'.repeat(47)}`);
    expect(utf8(odd.indexes[0]!)).toBe(95);
  });

  it('leaves a missing user or database empty', () => {
    expect(sessionDataPoint({ ...summary('h:1'), user: null, database: null }).blobs).toEqual([
      'h:1',
      '',
      '',
      'client closed the connection',
    ]);
  });
});
