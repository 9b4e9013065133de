/** SSLRequest: length 8, then the code 1234.5679 (protocol-message-formats). */
const SSL_REQUEST = [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f];
/** The bridge's answer to it: N, no TLS here. */
const NO = 0x4e;
/** A TLS handshake record starts with content type 22 and major version 3. */
const TLS_HANDSHAKE = 0x16;
const TLS_MAJOR = 0x03;

/**
 * Tells when a driver asked for TLS (SSLRequest), was told N, and starts a TLS handshake anyway:
 * postgres.js does so for any `ssl` other than 'prefer', handing the socket to tls.connect. The
 * bridge would read the ClientHello as a bad startup packet and the driver would see only a TLS
 * alert, so the socket fails at once with an error that says why. No I/O.
 */
export class TlsRequestWatch {
  private state: 'first-write' | 'asked' | 'refused' | 'done' = 'first-write';

  /** Bytes the driver writes; true when they start TLS after the bridge refused it. */
  written(bytes: Uint8Array): boolean {
    if (bytes.length === 0) return false;
    switch (this.state) {
      case 'first-write':
        this.state =
          bytes.length === SSL_REQUEST.length && SSL_REQUEST.every((b, i) => bytes[i] === b) ? 'asked' : 'done';
        return false;
      case 'refused':
        this.state = 'done';
        return bytes[0] === TLS_HANDSHAKE && (bytes.length < 2 || bytes[1] === TLS_MAJOR);
      default:
        return false;
    }
  }

  /** Bytes from the bridge. */
  received(bytes: Uint8Array): void {
    if (this.state === 'asked' && bytes.length > 0) this.state = bytes[0] === NO ? 'refused' : 'done';
  }
}
