import { describe, expect, it } from 'vitest';
import { BridgeError } from '../../worker/protocol/errors.js';
import { SaslOfferFilter } from '../../worker/protocol/sasl-offer-filter.js';
import { Bytes, concat, message } from '../support/wire.js';

const sasl = (...mechanisms: string[]) => {
  const body = new Bytes().int32(10);
  for (const name of mechanisms) body.cstring(name);
  return message('R', body.byte(0).build());
};
const saslContinue = message('R', new Bytes().int32(11).raw(Buffer.from('r=abc,s=c2FsdA==,i=4096')).build());
const saslFinal = message('R', new Bytes().int32(12).raw(Buffer.from('v=c2lnbmF0dXJl')).build());
const authOk = message('R', new Bytes().int32(0).build());
const negotiate = message('v', new Bytes().int32(2).int32(0).build());
const parameterStatus = message('S', new Bytes().cstring('server_version').cstring('18.4').build());
const keyData = message('K', new Bytes().int32(42).int32(7).build());
const ready = message('Z', Uint8Array.of(0x49));
const dataRow = message('D', new Bytes().int16(1).int32(1).raw([0x52]).build());
const error = message('E', new Bytes().byte(0x53).cstring('FATAL').byte(0x43).cstring('28P01').byte(0).build());

/** A login as PostgreSQL over TLS answers it, then a row whose bytes look like an Authentication request. */
const offered = sasl('SCRAM-SHA-256', 'SCRAM-SHA-256-PLUS');
const server = concat(negotiate, offered, saslContinue, saslFinal, authOk, parameterStatus, keyData, ready, dataRow);
const client = concat(
  negotiate,
  sasl('SCRAM-SHA-256'),
  saslContinue,
  saslFinal,
  authOk,
  parameterStatus,
  keyData,
  ready,
  dataRow,
);

function run(chunks: Uint8Array[]): { out: Uint8Array; pieces: Uint8Array[]; filter: SaslOfferFilter } {
  const filter = new SaslOfferFilter();
  const pieces = chunks.flatMap((chunk) => filter.push(chunk));
  return { out: concat(...pieces), pieces, filter };
}

describe('SaslOfferFilter', () => {
  it('offers the client SCRAM-SHA-256 without -PLUS, whichever order the server lists them in', () => {
    expect(run([sasl('SCRAM-SHA-256-PLUS', 'SCRAM-SHA-256')]).out).toEqual(sasl('SCRAM-SHA-256'));
    expect(run([sasl('SCRAM-SHA-256', 'SCRAM-SHA-256-PLUS')]).out).toEqual(sasl('SCRAM-SHA-256'));
  });

  it('rewrites the offer and passes everything else unchanged, however the stream is split', () => {
    for (let at = 0; at <= server.length; at++) {
      expect(run([server.subarray(0, at), server.subarray(at)]).out).toEqual(client);
      for (let second = at; second <= server.length; second += 5) {
        const { out, filter } = run([server.subarray(0, at), server.subarray(at, second), server.subarray(second)]);
        expect(out).toEqual(client);
        expect(filter.passing).toBe(true);
      }
    }
  });

  it('rewrites the offer fed byte by byte', () => {
    expect(run([...server].map((byte) => Uint8Array.of(byte))).out).toEqual(client);
  });

  it('passes other bytes as views of their chunk, and every chunk after the login as it is', () => {
    const { pieces, filter } = run([concat(negotiate, offered)]);
    expect(pieces[0]!.length).toBe(negotiate.length);
    const chunk = concat(saslContinue, saslFinal, authOk, parameterStatus);
    const next = filter.push(chunk);
    expect(concat(...next)).toEqual(chunk);
    expect(next.at(-1)!.buffer).toBe(chunk.buffer);
    const after = concat(dataRow, ready);
    expect(filter.push(after)[0]).toBe(after);
  });

  it('holds back only a partial Authentication message', () => {
    const filter = new SaslOfferFilter();
    expect(concat(...filter.push(concat(negotiate, offered.subarray(0, 3))))).toEqual(negotiate);
    expect(filter.push(offered.subarray(3, 10))).toEqual([]);
    expect(concat(...filter.push(offered.subarray(10)))).toEqual(sasl('SCRAM-SHA-256'));
  });

  it('leaves other authentication requests and an offer without -PLUS as they are', () => {
    const md5 = message('R', new Bytes().int32(5).raw([1, 2, 3, 4]).build());
    expect(run([md5]).out).toEqual(md5);
    expect(run([sasl('SCRAM-SHA-256')]).out).toEqual(sasl('SCRAM-SHA-256'));
    const unterminated = message('R', new Bytes().int32(10).cstring('SCRAM-SHA-256-PLUS').build());
    expect(run([unterminated]).out).toEqual(unterminated);
  });

  it('ends the login at an ErrorResponse or at a message that only follows one', () => {
    const afterError = run([concat(error, offered)]);
    expect(afterError.out).toEqual(concat(error, offered));
    const afterStatus = run([concat(parameterStatus, offered)]);
    expect(afterStatus.out).toEqual(concat(parameterStatus, offered));
  });

  it('refuses an authentication request longer than libpq accepts, rather than hold it', () => {
    const huge = message('R', new Bytes().int32(10).raw(new Uint8Array(3000).fill(0x41)).build());
    const filter = new SaslOfferFilter();
    expect(() => filter.push(huge.subarray(0, 5))).toThrow(BridgeError);
    try {
      new SaslOfferFilter().push(huge);
    } catch (e) {
      expect((e as BridgeError).code).toBe('SERVER_AUTH_FAILED');
    }
  });
});
