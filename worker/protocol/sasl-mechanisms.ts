/**
 * The mechanism names of an AuthenticationSASL body (protocol-message-formats): NUL-terminated
 * names, then an empty one that must be the body's last byte. Views of the body; null when the
 * list is malformed. Read by the edge login and by the filter that rewrites the client's offer.
 */
export function saslMechanisms(body: Uint8Array): Uint8Array[] | null {
  const names: Uint8Array[] = [];
  let offset = 0;
  for (;;) {
    const end = body.indexOf(0, offset);
    if (end === -1) return null;
    if (end === offset) return end === body.length - 1 ? names : null;
    names.push(body.subarray(offset, end));
    offset = end + 1;
  }
}
