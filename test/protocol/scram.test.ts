import { describe, expect, it } from 'vitest';
import { startScram, ScramError } from '../../worker/protocol/scram.js';

// RFC 7677, section 3: user "user", password "pencil".
const NONCE = Uint8Array.from(Buffer.from('rOprNGfwEbeRWgbNEkqO', 'base64'));
const SERVER_FIRST = 'r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096';

describe('SCRAM-SHA-256 client', () => {
  it('produces the RFC 7677 test vector and accepts the server signature', async () => {
    const scram = startScram('pencil', { user: 'user', nonce: NONCE });
    expect(scram.clientFirst).toBe('n,,n=user,r=rOprNGfwEbeRWgbNEkqO');
    expect(await scram.respond(SERVER_FIRST)).toBe(
      'c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=',
    );
    await expect(scram.verify('v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=')).resolves.toBeUndefined();
  });

  it('refuses a server that does not know the password', async () => {
    const scram = startScram('pencil', { user: 'user', nonce: NONCE });
    await scram.respond(SERVER_FIRST);
    await expect(scram.verify('v=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=')).rejects.toBeInstanceOf(ScramError);
  });

  it('refuses a server nonce that does not extend its own', async () => {
    const scram = startScram('pencil', { nonce: NONCE });
    await expect(scram.respond('r=someoneelse,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096')).rejects.toBeInstanceOf(ScramError);
    await expect(scram.respond('r=rOprNGfwEbeRWgbNEkqO,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096')).rejects.toBeInstanceOf(
      ScramError,
    );
  });
});
