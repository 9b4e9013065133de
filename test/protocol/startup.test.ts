import { describe, expect, it } from 'vitest';
import { BridgeError } from '../../worker/protocol/errors.js';
import { decodeStartupPacket, type StartupMessage } from '../../worker/protocol/startup.js';
import { Bytes, packet } from '../support/wire.js';

const NOT_NEGOTIATED = { sslDone: false, gssDone: false };

/** A StartupMessage 3.0 whose parameter values are raw bytes. */
function startup(...params: Array<[string, Uint8Array | string]>): Uint8Array {
  const body = new Bytes().int16(3).int16(0);
  for (const [name, value] of params) {
    body.cstring(name);
    if (typeof value === 'string') body.cstring(value);
    else body.raw(value).byte(0);
  }
  return packet(body.byte(0).build());
}

function decode(bytes: Uint8Array): StartupMessage {
  const decoded = decodeStartupPacket(bytes, NOT_NEGOTIATED);
  if (decoded.kind !== 'startup-message') throw new Error(decoded.kind);
  return decoded.message;
}

function refusal(bytes: Uint8Array): string | undefined {
  try {
    decode(bytes);
    return undefined;
  } catch (error) {
    return error instanceof BridgeError ? `${error.code} ${error.sqlState}` : String(error);
  }
}

const BOM = '\ufeff';

describe('startup names, as PostgreSQL will use them', () => {
  it('keeps a leading BOM, which PostgreSQL keeps as part of the name', () => {
    const message = decode(startup(['user', `${BOM}app_x`], ['database', `${BOM}shop`]));
    expect(message.user).toBe(`${BOM}app_x`);
    expect(message.database).toBe(`${BOM}shop`);
    expect(message.parameters[0]).toEqual(['user', `${BOM}app_x`]);
  });

  it.each([
    ['user', Uint8Array.of(0x61, 0xff, 0x62)],
    ['database', Uint8Array.of(0xc3)],
    ['application_name', Uint8Array.of(0xe9)], // Latin-1 é
    ['options', Uint8Array.of(0xed, 0xa0, 0x80)], // a UTF-8-encoded surrogate
  ])('refuses %s that is not UTF-8 with 08P01', (name, value) => {
    const params: Array<[string, Uint8Array | string]> = [
      ['user', 'app'],
      [name, value],
    ];
    expect(refusal(startup(...params))).toBe('INVALID_STARTUP_ENCODING 08P01');
  });

  it('truncates user and database to 63 bytes, and keeps the parameters as sent', () => {
    const database = `${'s'.repeat(63)}_public`;
    const user = `${'u'.repeat(62)}xyz`;
    const message = decode(startup(['user', user], ['database', database]));
    expect(message.database).toBe('s'.repeat(63));
    expect(message.user).toBe(`${'u'.repeat(62)}x`);
    expect(message.parameters).toEqual([
      ['user', user],
      ['database', database],
    ]);
    // 63 bytes exactly are kept; the database defaults to the user before both are truncated.
    expect(decode(startup(['user', 'a'.repeat(63)])).user).toBe('a'.repeat(63));
    expect(decode(startup(['user', 'b'.repeat(70)])).database).toBe('b'.repeat(63));
  });

  it('truncates byte-wise as PostgreSQL does, refusing a cut inside a character', () => {
    // 31 × 'é' is 62 bytes; the 63rd is the first byte of the 32nd 'é'.
    expect(refusal(startup(['user', 'é'.repeat(32)]))).toBe('INVALID_STARTUP_ENCODING 08P01');
    // 61 ASCII bytes and a 2-byte character end exactly at 63.
    expect(decode(startup(['user', `${'a'.repeat(61)}éz`])).user).toBe(`${'a'.repeat(61)}é`);
    // A BOM counts its 3 bytes.
    expect(decode(startup(['user', `${BOM}${'a'.repeat(70)}`])).user).toBe(`${BOM}${'a'.repeat(60)}`);
  });
});
