import { describe, expect, it } from 'vitest';
import { encodeFatalError } from '../../worker/protocol/error-response.js';
import { BridgeError } from '../../worker/protocol/errors.js';
import { errorFields, readMessages } from '../support/wire.js';

describe('encodeFatalError', () => {
  it('encodes one FATAL ErrorResponse with severity, SQLSTATE and message', () => {
    const bytes = encodeFatalError(
      new BridgeError('UNSUPPORTED_PROTOCOL', 'unsupported frontend protocol 4.0: server supports 3.0 to 3.2'),
    );
    const messages = readMessages(bytes);
    expect(messages.map((m) => m.type)).toEqual(['E']);
    expect(errorFields(messages[0]!.body)).toEqual({
      S: 'FATAL',
      V: 'FATAL',
      C: '0A000',
      M: 'unsupported frontend protocol 4.0: server supports 3.0 to 3.2',
    });
  });

  it('adds a detail field when there is one, and encodes text as UTF-8', () => {
    const bytes = encodeFatalError(new BridgeError('SERVER_TLS_REFUSED', 'TLS refusé ✗', 'détail'));
    const fields = errorFields(readMessages(bytes)[0]!.body);
    expect(fields).toMatchObject({ C: '08001', M: 'TLS refusé ✗', D: 'détail' });
  });

  it("never lets a NUL in the text end a field early: the fields stay the bridge's own", () => {
    const bytes = encodeFatalError(
      new BridgeError('TARGET_NOT_ALLOWED', 'server "a\0C08P01\0Sfake" is not allowed', 'd\0Mforged'),
    );
    expect(errorFields(readMessages(bytes)[0]!.body)).toEqual({
      S: 'FATAL',
      V: 'FATAL',
      C: '28000',
      M: 'server "a\uFFFDC08P01\uFFFDSfake" is not allowed',
      D: 'd\uFFFDMforged',
    });
  });
});

describe('BridgeError', () => {
  it.each([
    ['INVALID_MESSAGE_TYPE', '08P01', 1002],
    ['UNSUPPORTED_PROTOCOL', '0A000', 1002],
    ['MISSING_USER', '28000', 1008],
    ['SERVER_UNREACHABLE', '08001', 1014],
    ['SERVER_CONNECTION_LOST', '08006', 1014],
  ] as const)('%s carries SQLSTATE %s and WebSocket close code %d', (code, sqlState, closeCode) => {
    const error = new BridgeError(code, 'm');
    expect(error.sqlState).toBe(sqlState);
    expect(error.closeCode).toBe(closeCode);
  });
});
