import { concatBytes, readUint32 } from './bytes.js';
import { AuthCode, BackendType, MAX_AUTH_REQUEST_LENGTH, MAX_ERRLEN } from './constants.js';
import { BridgeError } from './errors.js';
import { saslInitialResponse, saslResponse } from './requests.js';
import { saslMechanisms } from './sasl-mechanisms.js';
import { SCRAM_SHA_256, ScramError, startScram, type IterationRange, type ScramClient } from './scram.js';

/** What the I/O around the machine does next. */
export type LoginStep =
  /** Write these bytes to the server, then feed the machine the server's next message. */
  | { readonly kind: 'send'; readonly bytes: Uint8Array }
  /** Feed the machine the server's next message. */
  | { readonly kind: 'read' }
  /**
   * Logged in: the server's signature was verified, then AuthenticationOk came. `forClient`
   * holds what the client is owed so far (NegotiateProtocolVersion, then AuthenticationOk);
   * everything the server sends after that goes to the client too.
   */
  | { readonly kind: 'logged-in'; readonly forClient: Uint8Array }
  /** The server refused the login with an ErrorResponse, which the client gets as PostgreSQL sent it. */
  | { readonly kind: 'refused-by-server'; readonly forClient: Uint8Array }
  /** The login ends here; nothing the server said reaches the client. */
  | { readonly kind: 'failed'; readonly error: BridgeError };

/** Where the exchange stands; each phase names the one kind of request the server may send next. */
type Phase =
  | { readonly name: 'awaiting-mechanisms'; readonly negotiated: boolean }
  | { readonly name: 'awaiting-challenge' }
  | { readonly name: 'awaiting-final' }
  | { readonly name: 'awaiting-ok' }
  | { readonly name: 'ended' };

const strict = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/**
 * The bridge's own login to PostgreSQL with a password the client never sees (protocol-flow,
 * "SASL Authentication"), as a state machine fed whole server messages: it says what to send
 * and how the login ended, and does no I/O. Only SCRAM-SHA-256 is spoken, and only completely:
 * AuthenticationOk counts after a SASLFinal whose server signature verified, never before, so a
 * server that does not know the password cannot pass for the database. Iteration counts outside
 * `iterations` are refused before any hashing.
 */
export class EdgeLoginMachine {
  private phase: Phase = { name: 'awaiting-mechanisms', negotiated: false };
  private readonly scram: ScramClient;
  private readonly forClient: Uint8Array[] = [];

  /** `options` fix the nonce and SCRAM user name for test vectors; PostgreSQL wants the user empty. */
  constructor(password: string, iterations: IterationRange, options: { nonce?: Uint8Array; user?: string } = {}) {
    this.scram = startScram(password, { iterations, ...options });
  }

  /** Takes the server's next message (type byte, length, body) and says what follows. */
  async receive(message: Uint8Array): Promise<LoginStep> {
    const step = await this.decide(message).catch((error: unknown) => failed(asLoginError(error)));
    if (step.kind !== 'send' && step.kind !== 'read') this.phase = { name: 'ended' };
    return step;
  }

  private async decide(message: Uint8Array): Promise<LoginStep> {
    const phase = this.phase;
    const type = message[0];
    if (phase.name === 'ended') return failed(authFailed('the login has already ended'));
    if (type === BackendType.ErrorResponse) {
      if (message.length - 1 > MAX_ERRLEN) return failed(authFailed('an oversized ErrorResponse'));
      return { kind: 'refused-by-server', forClient: concatBytes(...this.forClient, message) };
    }
    if (message.length - 1 > MAX_AUTH_REQUEST_LENGTH) return failed(authFailed('an oversized message'));
    if (type === BackendType.NegotiateProtocolVersion) {
      // Sent at most once, right after the StartupMessage; the client must see it.
      if (phase.name !== 'awaiting-mechanisms' || phase.negotiated) {
        return failed(authFailed('NegotiateProtocolVersion in the middle of authentication'));
      }
      this.forClient.push(message);
      this.phase = { name: 'awaiting-mechanisms', negotiated: true };
      return { kind: 'read' };
    }
    if (type !== BackendType.Authentication || message.length < 9) {
      return failed(authFailed('a message other than an authentication request'));
    }
    const code = readUint32(message, 5);
    const body = message.subarray(9);
    switch (code) {
      case AuthCode.SASL:
        if (phase.name !== 'awaiting-mechanisms') return failed(authFailed('a second AuthenticationSASL'));
        if (!mechanisms(body).includes(SCRAM_SHA_256)) return failed(notScram());
        this.phase = { name: 'awaiting-challenge' };
        return { kind: 'send', bytes: saslInitialResponse(this.scram.clientFirst) };
      case AuthCode.SASLContinue:
        if (phase.name !== 'awaiting-challenge') return failed(authFailed('SASLContinue out of order'));
        this.phase = { name: 'awaiting-final' };
        return { kind: 'send', bytes: saslResponse(await this.scram.respond(strict.decode(body))) };
      case AuthCode.SASLFinal:
        if (phase.name !== 'awaiting-final') return failed(authFailed('SASLFinal out of order'));
        await this.scram.verify(strict.decode(body));
        this.phase = { name: 'awaiting-ok' };
        return { kind: 'read' };
      case AuthCode.Ok:
        if (phase.name !== 'awaiting-ok' || body.length !== 0) {
          return failed(
            new BridgeError(
              'SERVER_AUTH_INCOMPLETE',
              'the database server reported success without completing SCRAM authentication',
            ),
          );
        }
        return { kind: 'logged-in', forClient: concatBytes(...this.forClient, message) };
      default:
        return failed(notScram());
    }
  }
}

const failed = (error: BridgeError): LoginStep => ({ kind: 'failed', error });

/** The mechanism names offered, decoded strictly; none when the list is malformed. */
function mechanisms(body: Uint8Array): string[] {
  return (saslMechanisms(body) ?? []).map((name) => strict.decode(name));
}

function authFailed(what: string): BridgeError {
  return new BridgeError('SERVER_AUTH_FAILED', 'the database server failed SCRAM authentication', what);
}

function notScram(): BridgeError {
  return new BridgeError(
    'SERVER_AUTH_FAILED',
    'the database server asked for an authentication method other than SCRAM-SHA-256',
  );
}

function asLoginError(error: unknown): BridgeError {
  if (error instanceof BridgeError) return error;
  if (error instanceof ScramError && error.fault === 'iterations') {
    return new BridgeError(
      'SERVER_SCRAM_ITERATIONS',
      'the database server asked for a SCRAM iteration count outside the range this bridge accepts',
    );
  }
  // A ScramError, or text that is not UTF-8 (TypeError from the strict decoder).
  return authFailed(error instanceof ScramError ? error.fault : 'undecodable SCRAM text');
}
