/**
 * The client side of SCRAM-SHA-256 (RFC 5802, RFC 7677) as PostgreSQL speaks it
 * (protocol-flow, "SASL Authentication"): no channel binding, an empty user name in the SCRAM
 * messages (PostgreSQL takes the user from the StartupMessage). WebCrypto only; no I/O.
 */

import { saslprep } from './saslprep.js';

export const SCRAM_SHA_256 = 'SCRAM-SHA-256';

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Why the server's side of the exchange was not accepted. */
export type ScramFault = 'malformed' | 'nonce' | 'iterations' | 'signature';

export class ScramError extends Error {
  constructor(
    readonly fault: ScramFault,
    message: string,
  ) {
    super(message);
    this.name = 'ScramError';
  }
}

/** The iteration counts a client will hash with; any other count is refused before hashing. */
export interface IterationRange {
  readonly minIterations: number;
  readonly maxIterations: number;
}

/** PostgreSQL's default scram_iterations; nothing stronger can be asked of a server by default. */
export const POSTGRES_DEFAULT_ITERATIONS = 4096;

export interface ScramClient {
  /** The client-first-message, for SASLInitialResponse. */
  readonly clientFirst: string;
  /** Answers the server-first-message (SASLContinue) with the client-final-message. */
  respond(serverFirst: string): Promise<string>;
  /** Checks the server-final-message (SASLFinal): the server proves it knew the password too. */
  verify(serverFinal: string): Promise<void>;
}

/**
 * `password` is prepared with SASLprep as PostgreSQL prepares it; `user` stays empty for
 * PostgreSQL; `nonce` is random unless a test fixes it.
 */
export function startScram(
  password: string,
  {
    user = '',
    nonce = crypto.getRandomValues(new Uint8Array(18)),
    iterations: range = { minIterations: 1, maxIterations: Number.MAX_SAFE_INTEGER },
  }: { user?: string; nonce?: Uint8Array; iterations?: IterationRange } = {},
): ScramClient {
  const clientNonce = base64(nonce);
  const clientFirstBare = `n=${user},r=${clientNonce}`;
  let expectedServerSignature: Uint8Array | null = null;

  return {
    clientFirst: `n,,${clientFirstBare}`,
    async respond(serverFirst) {
      if (expectedServerSignature) throw new ScramError('malformed', 'a second server-first-message');
      const { serverNonce, salt, iterations } = parseServerFirst(serverFirst);
      if (!serverNonce.startsWith(clientNonce) || serverNonce.length === clientNonce.length) {
        throw new ScramError('nonce', 'server nonce does not extend the client nonce');
      }
      // Checked before any hashing: PBKDF2 holds the thread every session shares.
      if (iterations < range.minIterations || iterations > range.maxIterations) {
        throw new ScramError('iterations', `the server asks for ${iterations} iterations`);
      }
      const salted = await pbkdf2(saslprep(password), salt, iterations);
      const clientKey = await hmac(salted, 'Client Key');
      const storedKey = new Uint8Array(await crypto.subtle.digest('SHA-256', clientKey));
      const withoutProof = `c=biws,r=${serverNonce}`;
      const authMessage = `${clientFirstBare},${serverFirst},${withoutProof}`;
      const clientSignature = await hmac(storedKey, authMessage);
      const proof = clientKey.map((byte, i) => byte ^ clientSignature[i]!);
      expectedServerSignature = await hmac(await hmac(salted, 'Server Key'), authMessage);
      return `${withoutProof},p=${base64(proof)}`;
    },
    async verify(serverFinal) {
      // server-final-message = "v=" base64 (an "e=" error or extensions are not accepted).
      const signature = /^v=([A-Za-z0-9+/]+={0,2})$/.exec(serverFinal)?.[1];
      if (!expectedServerSignature || !signature || !constantTimeEqual(unbase64(signature), expectedServerSignature)) {
        throw new ScramError('signature', 'server signature does not match');
      }
    },
  };
}

/**
 * server-first-message (RFC 5802, section 7) as PostgreSQL sends it: `r=`, `s=`, `i=` and nothing
 * else. A mandatory extension (`m=`) or anything unexpected is refused.
 */
const SERVER_FIRST =
  /^r=([\x21-\x2b\x2d-\x7e]+),s=((?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?),i=([1-9][0-9]{0,9})$/;

function parseServerFirst(message: string): { serverNonce: string; salt: Uint8Array<ArrayBuffer>; iterations: number } {
  const match = SERVER_FIRST.exec(message);
  if (!match || match[2] === '') throw new ScramError('malformed', 'malformed server-first-message');
  return { serverNonce: match[1]!, salt: unbase64(match[2]!), iterations: Number(match[3]) };
}

async function pbkdf2(
  password: string,
  salt: Uint8Array<ArrayBuffer>,
  iterations: number,
): Promise<Uint8Array<ArrayBuffer>> {
  const key = await crypto.subtle.importKey('raw', encoder.encode(password), 'PBKDF2', false, ['deriveBits']);
  const bits = await crypto.subtle.deriveBits({ name: 'PBKDF2', hash: 'SHA-256', salt, iterations }, key, 256);
  return new Uint8Array(bits);
}

async function hmac(key: Uint8Array<ArrayBuffer>, message: string): Promise<Uint8Array<ArrayBuffer>> {
  const imported = await crypto.subtle.importKey('raw', key, { name: 'HMAC', hash: 'SHA-256' }, false, ['sign']);
  return new Uint8Array(await crypto.subtle.sign('HMAC', imported, encoder.encode(message)));
}

function constantTimeEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i]! ^ b[i]!;
  return diff === 0;
}

function base64(bytes: Uint8Array): string {
  return btoa(String.fromCharCode(...bytes));
}

function unbase64(text: string): Uint8Array<ArrayBuffer> {
  return Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
}

export function utf8(bytes: Uint8Array): string {
  return decoder.decode(bytes);
}
