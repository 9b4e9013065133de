import { afterEach, describe, expect, it, vi } from 'vitest';
import { EdgeLoginMachine, type LoginStep } from '../../worker/protocol/edge-login-machine.js';
import { Bytes, message } from '../support/wire.js';

// RFC 7677, section 3: user "user", password "pencil".
const NONCE = Uint8Array.from(Buffer.from('rOprNGfwEbeRWgbNEkqO', 'base64'));
const CLIENT_FIRST = 'n,,n=user,r=rOprNGfwEbeRWgbNEkqO';
const SERVER_NONCE = 'rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0';
const SALT = 'W22ZaJ0SNY7soEsUEjb6gQ==';
const serverFirst = (iterations = 4096, nonce = SERVER_NONCE) => `r=${nonce},s=${SALT},i=${iterations}`;
const CLIENT_FINAL = `c=biws,r=${SERVER_NONCE},p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=`;
const SERVER_FINAL = 'v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=';
const RANGE = { minIterations: 4096, maxIterations: 100_000 };

const auth = (code: number, body: Uint8Array = new Uint8Array()) =>
  message('R', new Bytes().int32(code).raw(body).build());
const text = (value: string) => Uint8Array.from(Buffer.from(value, 'utf8'));
const saslRequest = (...mechanisms: string[]) => {
  const body = new Bytes();
  for (const name of mechanisms) body.cstring(name);
  return auth(10, body.byte(0).build());
};
const SASL = saslRequest('SCRAM-SHA-256-PLUS', 'SCRAM-SHA-256');
const saslContinue = (data = serverFirst()) => auth(11, text(data));
const saslFinal = (data = SERVER_FINAL) => auth(12, text(data));
const AUTH_OK = auth(0);
const negotiateProtocolVersion = message('v', new Bytes().int32(0x00030002).int32(1).cstring('_pq_.x').build());
const errorResponse = message(
  'E',
  new Bytes().byte(0x53).cstring('FATAL').byte(0x43).cstring('28P01').byte(0x4d).cstring('no').byte(0).build(),
);

const machine = () => new EdgeLoginMachine('pencil', RANGE, { nonce: NONCE, user: 'user' });

/** Feeds the messages in order; returns every step. */
async function run(login: EdgeLoginMachine, ...messages: Uint8Array[]): Promise<LoginStep[]> {
  const steps: LoginStep[] = [];
  for (const m of messages) steps.push(await login.receive(m));
  return steps;
}

const failure = (steps: LoginStep[]) => {
  const last = steps.at(-1)!;
  return last.kind === 'failed' ? { code: last.error.code, sqlState: last.error.sqlState } : last.kind;
};

afterEach(() => vi.restoreAllMocks());

describe('EdgeLoginMachine', () => {
  it('answers with the RFC 7677 test vector and logs in after a verified SASLFinal', async () => {
    const login = machine();
    const steps = await run(login, SASL, saslContinue(), saslFinal(), AUTH_OK);
    const initialData = text(CLIENT_FIRST);
    expect(steps[0]).toEqual({
      kind: 'send',
      bytes: message('p', new Bytes().cstring('SCRAM-SHA-256').int32(initialData.length).raw(initialData).build()),
    });
    expect(steps[1]).toEqual({ kind: 'send', bytes: message('p', text(CLIENT_FINAL)) });
    expect(steps[2]).toEqual({ kind: 'read' });
    expect(steps[3]).toEqual({ kind: 'logged-in', forClient: AUTH_OK });
  });

  it('passes NegotiateProtocolVersion before authentication on to the client, ahead of AuthenticationOk', async () => {
    const steps = await run(machine(), negotiateProtocolVersion, SASL, saslContinue(), saslFinal(), AUTH_OK);
    expect(steps[0]).toEqual({ kind: 'read' });
    expect(steps.at(-1)).toEqual({
      kind: 'logged-in',
      forClient: Uint8Array.from([...negotiateProtocolVersion, ...AUTH_OK]),
    });
  });

  it.each([
    ['before SASL', [errorResponse]],
    ['after the challenge', [SASL, saslContinue(), errorResponse]],
    ['after NegotiateProtocolVersion', [negotiateProtocolVersion, SASL, errorResponse]],
  ])("relays PostgreSQL's own ErrorResponse %s, as it is", async (_, messages) => {
    const steps = await run(machine(), ...messages);
    const expected = messages.filter((m) => m[0] !== 0x52);
    expect(steps.at(-1)).toEqual({
      kind: 'refused-by-server',
      forClient: Uint8Array.from(expected.flatMap((m) => Array.from(m))),
    });
  });

  const INCOMPLETE = { code: 'SERVER_AUTH_INCOMPLETE', sqlState: '08001' };
  const FAILED = { code: 'SERVER_AUTH_FAILED', sqlState: '08001' };
  const ITERATIONS = { code: 'SERVER_SCRAM_ITERATIONS', sqlState: '08001' };

  it.each([
    ['AuthenticationOk straight away', [AUTH_OK], INCOMPLETE],
    ['AuthenticationOk after SASL, before the challenge', [SASL, AUTH_OK], INCOMPLETE],
    ['AuthenticationOk without SASLFinal', [SASL, saslContinue(), AUTH_OK], INCOMPLETE],
    ['AuthenticationOk with a body', [SASL, saslContinue(), saslFinal(), auth(0, Uint8Array.of(1))], INCOMPLETE],
    ['SASLFinal with a wrong signature', [SASL, saslContinue(), saslFinal(`v=${'A'.repeat(43)}=`)], FAILED],
    ['SASLFinal with an error', [SASL, saslContinue(), saslFinal('e=invalid-proof')], FAILED],
    ['SASLFinal before SASLContinue', [SASL, saslFinal()], FAILED],
    ['SASLFinal before SASL', [saslFinal()], FAILED],
    ['SASLContinue before SASL', [saslContinue()], FAILED],
    ['a second SASLContinue', [SASL, saslContinue(), saslContinue()], FAILED],
    ['a second SASLFinal', [SASL, saslContinue(), saslFinal(), saslFinal()], FAILED],
    ['iterations 1', [SASL, saslContinue(serverFirst(1))], ITERATIONS],
    ['iterations 4095', [SASL, saslContinue(serverFirst(4095))], ITERATIONS],
    ['iterations 5,000,000', [SASL, saslContinue(serverFirst(5_000_000))], ITERATIONS],
    ['a nonce that does not extend the client nonce', [SASL, saslContinue(serverFirst(4096, 'xyz'))], FAILED],
    ['a nonce equal to the client nonce', [SASL, saslContinue(serverFirst(4096, 'rOprNGfwEbeRWgbNEkqO'))], FAILED],
    ['a mandatory extension', [SASL, saslContinue(`m=ext,${serverFirst()}`)], FAILED],
    ['a salt that is not base64', [SASL, saslContinue(`r=${SERVER_NONCE},s=!!!,i=4096`)], FAILED],
    ['SASLContinue that is not UTF-8', [SASL, auth(11, Uint8Array.of(0xff, 0xfe))], FAILED],
    ['a cleartext password request', [auth(3)], FAILED],
    ['an MD5 password request', [auth(5, Uint8Array.of(1, 2, 3, 4))], FAILED],
    ['a GSS request', [auth(7)], FAILED],
    ['SASL without SCRAM-SHA-256', [saslRequest('SCRAM-SHA-256-PLUS')], FAILED],
    ['SASL with an unterminated list', [auth(10, text('SCRAM-SHA-256\0'))], FAILED],
    ['a second AuthenticationSASL', [SASL, SASL], FAILED],
    ['a second AuthenticationSASL after the challenge', [SASL, saslContinue(), SASL], FAILED],
    ['NegotiateProtocolVersion twice', [negotiateProtocolVersion, negotiateProtocolVersion], FAILED],
    ['NegotiateProtocolVersion after SASL', [SASL, negotiateProtocolVersion], FAILED],
    ['ReadyForQuery before authentication', [message('Z', Uint8Array.of(0x49))], FAILED],
    ['ParameterStatus before authentication', [message('S', text('a\0b\0'))], FAILED],
    ['an authentication request without a code', [message('R')], FAILED],
    ['an oversized authentication request', [auth(10, new Uint8Array(2000))], FAILED],
  ])('ends the login on %s, passing nothing to the client', async (_, messages, expected) => {
    const steps = await run(machine(), ...messages);
    expect(failure(steps)).toEqual(expected);
    expect(steps.slice(0, -1).every((step) => step.kind === 'send' || step.kind === 'read')).toBe(true);
  });

  it('refuses an iteration count outside the range before hashing anything', async () => {
    const deriveBits = vi.spyOn(crypto.subtle, 'deriveBits');
    for (const iterations of [1, 5_000_000]) {
      expect(failure(await run(machine(), SASL, saslContinue(serverFirst(iterations))))).toEqual(ITERATIONS);
    }
    expect(deriveBits).not.toHaveBeenCalled();
  });

  it('stays ended: nothing after the end is accepted', async () => {
    const login = machine();
    await run(login, AUTH_OK);
    expect(failure(await run(login, SASL))).toEqual(FAILED);
  });
});
