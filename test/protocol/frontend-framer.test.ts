import { describe, expect, it } from 'vitest';
import { PQ_LARGE_MESSAGE_LIMIT } from '../../worker/protocol/constants.js';
import { FrontendFramer, type FrontendEvent } from '../../worker/protocol/frontend-framer.js';
import {
  Bytes,
  HTTP_GET,
  NMAP_SMB_PROBE,
  TLS_CLIENT_HELLO,
  bind,
  cancelRequest,
  concat,
  describePortal,
  execute,
  flush,
  gssencRequest,
  message,
  packet,
  parse,
  query,
  sslRequest,
  startupMessage,
  sync,
  terminate,
} from '../support/wire.js';

const LIMITS = { maxMessageLength: PQ_LARGE_MESSAGE_LIMIT };
const copyData = (text: string): Uint8Array => message('d', new TextEncoder().encode(text));
const STARTUP = startupMessage({ user: 'alice', database: 'shop', application_name: 'test' });

/** What a stream of chunks amounts to: the events, with all forwarded bytes joined. */
function run(chunks: Uint8Array[], limits = LIMITS) {
  const framer = new FrontendFramer(limits);
  const events: FrontendEvent[] = chunks.flatMap((chunk) => framer.push(chunk));
  const forwarded = concat(...events.flatMap((e) => (e.type === 'frames' ? [e.bytes] : [])));
  const kinds = events.filter((e) => e.type !== 'frames').map((e) => e.type);
  const refused = events.find((e) => e.type === 'refused');
  return { framer, events, forwarded, kinds, error: refused?.type === 'refused' ? refused.error : undefined };
}

/** The same stream split at every offset into two chunks, and byte by byte. */
function everySplit(stream: Uint8Array): Uint8Array[][] {
  const splits: Uint8Array[][] = [[stream], Array.from(stream, (b) => Uint8Array.of(b))];
  for (let at = 1; at < stream.length; at++) splits.push([stream.subarray(0, at), stream.subarray(at)]);
  return splits;
}

describe('FrontendFramer: a valid session', () => {
  const frames = concat(
    query('SELECT 1'),
    parse('SELECT $1::int'),
    bind(['42']),
    describePortal(),
    execute(),
    sync(),
    flush(),
    terminate(),
  );

  it('accepts the startup message and forwards every later frame unchanged, however the bytes are split', () => {
    for (const chunks of everySplit(concat(STARTUP, frames))) {
      const { events, forwarded, kinds, error } = run(chunks);
      expect(error).toBeUndefined();
      expect(kinds).toEqual(['startup']);
      const startup = events.find((e) => e.type === 'startup');
      expect(startup?.type === 'startup' && startup.packet).toEqual(STARTUP);
      expect(forwarded).toEqual(frames);
    }
  });

  it('counts the messages that each earn a ReadyForQuery: Query, Sync, FunctionCall', () => {
    const functionCall = message('F', new Bytes().int32(1).int16(0).int16(0).int16(0).build());
    for (const chunks of everySplit(concat(STARTUP, frames, functionCall))) {
      expect(run(chunks).framer.syncPoints).toBe(3);
    }
  });

  it('does not count the Syncs a COPY FROM STDIN reads: libpq sends one right after Execute', () => {
    const framer = new FrontendFramer(LIMITS);
    framer.push(STARTUP);
    framer.push(concat(query('SELECT 1'), parse('COPY t FROM STDIN'), bind(), execute(), sync()));
    expect(framer.syncPoints).toBe(2);
    framer.copyInStarted(); // the server's CopyInResponse
    // The copy data shows the COPY under way: the Sync after Execute was read by it, and so is one among the data.
    framer.push(concat(copyData('a'), sync(), copyData('b')));
    expect(framer.syncPoints).toBe(1);
    // The Sync after CopyDone earns the ReadyForQuery that ends it.
    framer.push(concat(message('c'), sync()));
    expect(framer.syncPoints).toBe(2);
  });

  it('counts Syncs again once the server ended the COPY, whatever copy messages are still on their way', () => {
    // A COPY into a view fails right after CopyInResponse: the Sync after Execute earns a ReadyForQuery.
    const failed = new FrontendFramer(LIMITS);
    failed.push(STARTUP);
    failed.push(concat(parse('COPY v FROM STDIN'), bind(), execute(), sync()));
    failed.copyInStarted();
    failed.copyInEnded(); // its ErrorResponse
    failed.push(concat(copyData('a'), message('c'), sync()));
    expect(failed.syncPoints).toBe(2);
    // A row refused mid-COPY, and no CopyDone after it: later Syncs count.
    const refused = new FrontendFramer(LIMITS);
    refused.push(STARTUP);
    refused.push(query('COPY t FROM STDIN'));
    refused.copyInStarted();
    refused.push(copyData('bad row'));
    refused.copyInEnded();
    refused.push(concat(parse('SELECT 1'), bind(), execute(), sync(), sync()));
    expect(refused.syncPoints).toBe(3);
  });

  it('counts Syncs as usual around copy messages without a CopyInResponse, or a COPY started by a simple Query', () => {
    const stray = new FrontendFramer(LIMITS);
    stray.push(STARTUP);
    stray.push(concat(parse('SELECT 1'), bind(), execute(), sync(), copyData('x'), message('c'), sync()));
    expect(stray.syncPoints).toBe(2);
    const simple = new FrontendFramer(LIMITS);
    simple.push(STARTUP);
    simple.push(query('COPY t FROM STDIN'));
    simple.copyInStarted();
    simple.push(concat(copyData('a'), message('f', new Bytes().cstring('stop').build()), query('SELECT 1')));
    expect(simple.syncPoints).toBe(2);
  });

  it('decodes the startup parameters in order and defaults the database to the user', () => {
    const { events } = run([STARTUP]);
    const startup = events[0]!;
    expect(startup.type === 'startup' && startup.message).toEqual({
      majorVersion: 3,
      minorVersion: 0,
      user: 'alice',
      database: 'shop',
      parameters: [
        ['user', 'alice'],
        ['database', 'shop'],
        ['application_name', 'test'],
      ],
    });
    const noDatabase = run([startupMessage({ user: 'bob' })]).events[0]!;
    expect(noDatabase.type === 'startup' && noDatabase.message.database).toBe('bob');
  });

  it('answers SSLRequest and GSSENCRequest before the startup message, as libpq sends them', () => {
    for (const chunks of everySplit(concat(gssencRequest(), sslRequest(), STARTUP, sync()))) {
      const { kinds, forwarded } = run(chunks);
      expect(kinds).toEqual(['gssenc-request', 'ssl-request', 'startup']);
      expect(forwarded).toEqual(sync());
    }
  });

  it('passes a newer minor protocol version (3.2, 3.3) through for PostgreSQL to negotiate', () => {
    for (const minor of [1, 2, 3, 0xffff]) {
      const { events, error } = run([startupMessage({ user: 'u' }, 3, minor)]);
      expect(error).toBeUndefined();
      expect(events[0]!.type === 'startup' && events[0]!.message.minorVersion).toBe(minor);
    }
  });

  it('takes a CancelRequest with a 4-byte (3.0) or a longer (3.2) key and reads nothing after it', () => {
    for (const key of [new Uint8Array(4).fill(7), new Uint8Array(32).fill(9), new Uint8Array(256)]) {
      const cancel = cancelRequest(1234, key);
      for (const chunks of everySplit(concat(cancel, query('SELECT 1')))) {
        const { events, forwarded } = run(chunks);
        expect(events.map((e) => e.type)).toEqual(['cancel']);
        expect(events[0]!.type === 'cancel' && events[0]!.packet).toEqual(cancel);
        expect(forwarded).toEqual(new Uint8Array());
      }
    }
  });

  it('tracks whether the stream stands between two whole messages, and whether Terminate was sent', () => {
    const framer = new FrontendFramer(LIMITS);
    expect(framer.atBoundary).toBe(true);
    framer.push(STARTUP.subarray(0, 6));
    expect(framer.atBoundary).toBe(false);
    framer.push(STARTUP.subarray(6));
    expect(framer.atBoundary).toBe(true);
    const q = query('SELECT 1');
    framer.push(q.subarray(0, 3));
    expect(framer.atBoundary).toBe(false);
    framer.push(q.subarray(3, 9));
    expect(framer.atBoundary).toBe(false);
    framer.push(q.subarray(9));
    expect(framer.atBoundary).toBe(true);
    expect(framer.sawTerminate).toBe(false);
    framer.push(terminate());
    expect(framer.sawTerminate).toBe(true);
  });
});

describe('FrontendFramer: startup refusals', () => {
  const cases: Array<[string, Uint8Array, string, string, string?]> = [
    [
      "nmap's SMB probe",
      NMAP_SMB_PROBE,
      'UNSUPPORTED_PROTOCOL',
      '0A000',
      'unsupported frontend protocol 65363.19778: server supports 3.0 to 3.2',
    ],
    ['an HTTP request', HTTP_GET, 'INVALID_STARTUP_LENGTH', '08P01', 'invalid length of startup packet'],
    ['a TLS ClientHello', TLS_CLIENT_HELLO, 'INVALID_STARTUP_LENGTH', '08P01'],
    ['a length below 8', new Bytes().int32(7).int16(3).int16(0).build(), 'INVALID_STARTUP_LENGTH', '08P01'],
    ['a length of 0', new Bytes().int32(0).int32(0).build(), 'INVALID_STARTUP_LENGTH', '08P01'],
    ['a length above 10000', new Bytes().int32(10001).int16(3).int16(0).build(), 'INVALID_STARTUP_LENGTH', '08P01'],
    ['a length of 2^31', new Bytes().int32(0x80000000).int16(3).int16(0).build(), 'INVALID_STARTUP_LENGTH', '08P01'],
    ['a length of 2^32-1', new Bytes().int32(0xffffffff).int16(3).int16(0).build(), 'INVALID_STARTUP_LENGTH', '08P01'],
    [
      'protocol 2.0',
      startupMessage({ user: 'u' }, 2, 0),
      'UNSUPPORTED_PROTOCOL',
      '0A000',
      'unsupported frontend protocol 2.0: server supports 3.0 to 3.2',
    ],
    [
      'protocol 4.0',
      startupMessage({ user: 'u' }, 4, 0),
      'UNSUPPORTED_PROTOCOL',
      '0A000',
      'unsupported frontend protocol 4.0: server supports 3.0 to 3.2',
    ],
    [
      'no user',
      startupMessage({ database: 'd' }),
      'MISSING_USER',
      '28000',
      'no PostgreSQL user name specified in startup packet',
    ],
    ['an empty user', startupMessage({ user: '' }), 'MISSING_USER', '28000'],
    [
      'no terminator',
      packet(new Bytes().int16(3).int16(0).cstring('user').cstring('u').build()),
      'INVALID_STARTUP_LAYOUT',
      '08P01',
      'invalid startup packet layout: expected terminator as last byte',
    ],
    [
      'bytes after the terminator',
      packet(new Bytes().int16(3).int16(0).cstring('user').cstring('u').byte(0).byte(1).build()),
      'INVALID_STARTUP_LAYOUT',
      '08P01',
    ],
    [
      'a name without a value',
      packet(new Bytes().int16(3).int16(0).cstring('user').build()),
      'INVALID_STARTUP_LAYOUT',
      '08P01',
    ],
    [
      'an unterminated value',
      packet(new Bytes().int16(3).int16(0).cstring('user').raw([0x75]).build()),
      'INVALID_STARTUP_LAYOUT',
      '08P01',
    ],
    [
      'an SSLRequest with a body',
      packet(new Bytes().int16(1234).int16(5679).int32(0).build()),
      'INVALID_STARTUP_LENGTH',
      '08P01',
    ],
    [
      'a second SSLRequest',
      concat(sslRequest(), sslRequest()),
      'UNSUPPORTED_PROTOCOL',
      '0A000',
      'unsupported frontend protocol 1234.5679: server supports 3.0 to 3.2',
    ],
    ['a second GSSENCRequest', concat(gssencRequest(), gssencRequest()), 'UNSUPPORTED_PROTOCOL', '0A000'],
    [
      'a short CancelRequest',
      packet(new Bytes().int16(1234).int16(5678).int32(1).build()),
      'INVALID_CANCEL_REQUEST',
      '08P01',
    ],
    ['a CancelRequest with a 257-byte key', cancelRequest(1, new Uint8Array(257)), 'INVALID_CANCEL_REQUEST', '08P01'],
  ];

  it.each(cases)(
    'refuses %s with the SQLSTATE PostgreSQL uses, however it is split',
    (_, bytes, code, sqlState, text) => {
      for (const chunks of everySplit(concat(bytes, STARTUP, query('SELECT 1')))) {
        const { error, events, forwarded } = run(chunks);
        expect(error?.code).toBe(code);
        expect(error?.sqlState).toBe(sqlState);
        if (text) expect(error?.message).toBe(text);
        expect(events.at(-1)?.type).toBe('refused');
        expect(events.some((e) => e.type === 'startup')).toBe(false);
        expect(forwarded).toEqual(new Uint8Array());
      }
    },
  );
});

describe('FrontendFramer: normal-phase refusals', () => {
  const valid = concat(query('INSERT INTO t VALUES (1)'), parse('SELECT 1'), sync());
  const after = query('DROP TABLE t');
  const cases: Array<[string, Uint8Array, string]> = [
    ['an unknown type byte', message('Z', new Uint8Array(3)), 'INVALID_MESSAGE_TYPE'],
    ['a backend-only type byte (T)', message('T'), 'INVALID_MESSAGE_TYPE'],
    ['a second StartupMessage', startupMessage({ user: 'mallory' }), 'INVALID_MESSAGE_TYPE'],
    ['an SSLRequest after startup', sslRequest(), 'INVALID_MESSAGE_TYPE'],
    ['a length of 0', new Bytes().byte(0x51).int32(0).build(), 'INVALID_MESSAGE_LENGTH'],
    ['a length of 3', new Bytes().byte(0x51).int32(3).build(), 'INVALID_MESSAGE_LENGTH'],
    ['a length of 2^31', new Bytes().byte(0x51).int32(0x80000000).build(), 'INVALID_MESSAGE_LENGTH'],
    ['a length of 2^32-1', new Bytes().byte(0x64).int32(0xffffffff).build(), 'INVALID_MESSAGE_LENGTH'],
    ['a Sync with a body', message('S', new Uint8Array(1)), 'INVALID_MESSAGE_LENGTH'],
    ['a Terminate with a body', message('X', new Uint8Array(2)), 'INVALID_MESSAGE_LENGTH'],
    ['an Execute above 10000 bytes', new Bytes().byte(0x45).int32(10001).build(), 'INVALID_MESSAGE_LENGTH'],
    ['a password message above 65535 bytes', new Bytes().byte(0x70).int32(65536).build(), 'INVALID_MESSAGE_LENGTH'],
  ];

  it.each(cases)('refuses %s with 08P01 and forwards only the whole frames before it', (_, bad, code) => {
    for (const chunks of everySplit(concat(STARTUP, valid, bad, after))) {
      const { error, forwarded, kinds } = run(chunks);
      expect(kinds).toEqual(['startup', 'refused']);
      expect(error?.code).toBe(code);
      expect(error?.sqlState).toBe('08P01');
      expect(forwarded).toEqual(valid);
    }
  });

  it('bounds messages by the configured maximum', () => {
    const limits = { maxMessageLength: 1000 };
    const fits = query('x'.repeat(1000 - 5));
    expect(run([STARTUP, fits], limits).error).toBeUndefined();
    const tooBig = query('x'.repeat(1000 - 4));
    const { error, forwarded } = run([STARTUP, fits, tooBig], limits);
    expect(error?.code).toBe('INVALID_MESSAGE_LENGTH');
    expect(forwarded).toEqual(fits);
  });

  it('streams a large frame through as it arrives, without waiting for its end', () => {
    const big = message('d', new Uint8Array(100_000).fill(1));
    const framer = new FrontendFramer(LIMITS);
    framer.push(STARTUP);
    const first = framer.push(big.subarray(0, 50_000));
    expect(first).toEqual([{ type: 'frames', bytes: big.subarray(0, 50_000) }]);
    expect(first[0]!.type === 'frames' && first[0]!.bytes.buffer).toBe(big.buffer);
  });

  it('ignores everything after a refusal', () => {
    const framer = new FrontendFramer(LIMITS);
    framer.push(STARTUP);
    expect(framer.push(message('?')).map((e) => e.type)).toEqual(['refused']);
    expect(framer.push(query('SELECT 1'))).toEqual([]);
  });
});

describe('FrontendFramer: a client that leaves before its startup', () => {
  it('lets a Terminate where the startup packet should be go without a refusal, however it is split', () => {
    for (const stream of [terminate(), concat(terminate(), query('SELECT 1')), concat(sslRequest(), terminate())]) {
      for (const chunks of everySplit(stream)) {
        const { kinds, forwarded } = run(chunks);
        expect(kinds).toEqual([...(stream[0] === 0x58 ? [] : ['ssl-request']), 'left-before-startup']);
        expect(forwarded.length).toBe(0);
      }
    }
  });

  it('waits for the fifth byte before judging, and refuses anything else that starts like it', () => {
    const framer = new FrontendFramer(LIMITS);
    expect(framer.push(terminate().subarray(0, 4))).toEqual([]);
    for (const fifth of [0, 5, 0x58]) {
      const { error } = run([Uint8Array.of(0x58, 0, 0, 0, fifth)]);
      expect([error?.code, error?.sqlState]).toEqual(['INVALID_STARTUP_LENGTH', '08P01']);
    }
  });
});
