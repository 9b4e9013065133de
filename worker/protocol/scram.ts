/**
 * The client side of SCRAM-SHA-256 (RFC 5802, RFC 7677) as PostgreSQL speaks it
 * (protocol-flow, "SASL Authentication"): no channel binding, an empty user name in the SCRAM
 * messages (PostgreSQL takes the user from the StartupMessage). WebCrypto only; no I/O.
 */

export const SCRAM_SHA_256 = 'SCRAM-SHA-256';

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export class ScramError extends Error {}

export interface ScramClient {
  /** The client-first-message, for SASLInitialResponse. */
  readonly clientFirst: string;
  /** Answers the server-first-message (SASLContinue) with the client-final-message. */
  respond(serverFirst: string): Promise<string>;
  /** Checks the server-final-message (SASLFinal): the server proves it knew the password too. */
  verify(serverFinal: string): Promise<void>;
}

/** `user` stays empty for PostgreSQL; `nonce` is random unless a test fixes it. */
export function startScram(
  password: string,
  { user = '', nonce = crypto.getRandomValues(new Uint8Array(18)) }: { user?: string; nonce?: Uint8Array } = {},
): ScramClient {
  const clientNonce = base64(nonce);
  const clientFirstBare = `n=${user},r=${clientNonce}`;
  let expectedServerSignature: Uint8Array | null = null;

  return {
    clientFirst: `n,,${clientFirstBare}`,
    async respond(serverFirst) {
      const attrs = attributes(serverFirst);
      const serverNonce = attrs.get('r');
      const salt = attrs.get('s');
      const iterations = Number(attrs.get('i'));
      if (!serverNonce || !serverNonce.startsWith(clientNonce) || serverNonce.length === clientNonce.length) {
        throw new ScramError('server nonce does not extend the client nonce');
      }
      if (!salt || !Number.isInteger(iterations) || iterations < 1)
        throw new ScramError('malformed server-first-message');
      const salted = await pbkdf2(password, unbase64(salt), iterations);
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
      const signature = attributes(serverFinal).get('v');
      if (!expectedServerSignature || !signature || !constantTimeEqual(unbase64(signature), expectedServerSignature)) {
        throw new ScramError('server signature does not match');
      }
    },
  };
}

function attributes(message: string): Map<string, string> {
  return new Map(message.split(',').map((part) => [part.slice(0, 1), part.slice(2)]));
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
