import { createHash, createHmac, pbkdf2Sync, randomBytes, timingSafeEqual } from 'node:crypto';

/**
 * The server side of SCRAM-SHA-256 (RFC 5802, RFC 7677) on node:crypto, written apart from the
 * bridge's client so that the two check each other. `password` is used as given (no SASLprep).
 */
export class ScramServer {
  private readonly salt = randomBytes(16);
  private clientFirstBare = '';
  private serverFirst = '';
  private nonce = '';

  constructor(
    private readonly password: string,
    readonly iterations = 4096,
  ) {}

  /** Takes the client-first-message; returns the server-first-message. */
  first(clientFirst: string, options: { nonce?: string } = {}): string {
    if (!clientFirst.startsWith('n,,')) throw new Error(`unexpected gs2 header in ${clientFirst}`);
    this.clientFirstBare = clientFirst.slice(3);
    const clientNonce = /(?:^|,)r=([^,]+)/.exec(this.clientFirstBare)![1]!;
    this.nonce = options.nonce ?? clientNonce + randomBytes(18).toString('base64');
    this.serverFirst = `r=${this.nonce},s=${this.salt.toString('base64')},i=${this.iterations}`;
    return this.serverFirst;
  }

  /** Takes the client-final-message; returns the server signature (base64), or null if the proof is wrong. */
  final(clientFinal: string): string | null {
    const [, withoutProof, proof] = /^(c=biws,r=[^,]+),p=(.+)$/.exec(clientFinal) ?? [];
    if (!withoutProof || !proof || !withoutProof.endsWith(this.nonce)) return null;
    const salted = pbkdf2Sync(Buffer.from(this.password, 'utf8'), this.salt, this.iterations, 32, 'sha256');
    const clientKey = createHmac('sha256', salted).update('Client Key').digest();
    const storedKey = createHash('sha256').update(clientKey).digest();
    const authMessage = `${this.clientFirstBare},${this.serverFirst},${withoutProof}`;
    const signature = createHmac('sha256', storedKey).update(authMessage).digest();
    const expected = Buffer.from(clientKey.map((byte, i) => byte ^ signature[i]!));
    const given = Buffer.from(proof, 'base64');
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) return null;
    const serverKey = createHmac('sha256', salted).update('Server Key').digest();
    return createHmac('sha256', serverKey).update(authMessage).digest('base64');
  }
}
