/**
 * An independent builder and reader of PostgreSQL wire bytes for tests, written from the protocol
 * documentation rather than from the bridge's own code, so a shared mistake cannot hide.
 */

export class Bytes {
  private parts: number[] = [];

  int32(value: number): this {
    this.parts.push((value >>> 24) & 0xff, (value >>> 16) & 0xff, (value >>> 8) & 0xff, value & 0xff);
    return this;
  }
  int16(value: number): this {
    this.parts.push((value >>> 8) & 0xff, value & 0xff);
    return this;
  }
  byte(value: number): this {
    this.parts.push(value & 0xff);
    return this;
  }
  cstring(text: string): this {
    this.parts.push(...Buffer.from(text, 'utf8'), 0);
    return this;
  }
  raw(bytes: ArrayLike<number>): this {
    this.parts.push(...Array.from(bytes));
    return this;
  }
  build(): Uint8Array {
    return Uint8Array.from(this.parts);
  }
}

export function concat(...chunks: Uint8Array[]): Uint8Array {
  return Uint8Array.from(chunks.flatMap((chunk) => Array.from(chunk)));
}

/** Untyped startup-phase packet: length (counting itself) then body. */
export function packet(body: Uint8Array): Uint8Array {
  return new Bytes()
    .int32(body.length + 4)
    .raw(body)
    .build();
}

/** Typed normal-phase message: type letter, length (counting itself), body. */
export function message(type: string, body: Uint8Array = new Uint8Array()): Uint8Array {
  return new Bytes()
    .byte(type.charCodeAt(0))
    .int32(body.length + 4)
    .raw(body)
    .build();
}

export function startupMessage(params: Record<string, string>, major = 3, minor = 0): Uint8Array {
  const body = new Bytes().int16(major).int16(minor);
  for (const [name, value] of Object.entries(params)) body.cstring(name).cstring(value);
  return packet(body.byte(0).build());
}

export const sslRequest = (): Uint8Array => packet(new Bytes().int16(1234).int16(5679).build());
export const gssencRequest = (): Uint8Array => packet(new Bytes().int16(1234).int16(5680).build());

export function cancelRequest(processId: number, key: Uint8Array): Uint8Array {
  return packet(new Bytes().int16(1234).int16(5678).int32(processId).raw(key).build());
}

export const query = (sql: string): Uint8Array => message('Q', new Bytes().cstring(sql).build());
export const sync = (): Uint8Array => message('S');
export const terminate = (): Uint8Array => message('X');
export const flush = (): Uint8Array => message('H');

export function parse(sql: string, name = ''): Uint8Array {
  return message('P', new Bytes().cstring(name).cstring(sql).int16(0).build());
}
export function bind(params: string[] = [], portal = '', statement = ''): Uint8Array {
  const body = new Bytes().cstring(portal).cstring(statement).int16(0).int16(params.length);
  for (const param of params) {
    const bytes = Buffer.from(param);
    body.int32(bytes.length).raw(bytes);
  }
  return message('B', body.int16(0).build());
}
export const describePortal = (portal = ''): Uint8Array => message('D', new Bytes().byte(0x50).cstring(portal).build());
export const execute = (portal = '', maxRows = 0): Uint8Array =>
  message('E', new Bytes().cstring(portal).int32(maxRows).build());

/** nmap's SMBProgNeg service probe, as it arrives on a PostgreSQL port. */
export const NMAP_SMB_PROBE = Uint8Array.from(
  Buffer.from(
    '000000a4ff534d4272000000000801400000000000000000000000000000400600000100008100025043204e4554574f524b2050524f4752414d20312e3000024d4943524f534f4654204e4554574f524b5320312e303300024d4943524f534f4654204e4554574f524b5320332e3000024c414e4d414e312e3000024c4d312e3258303032000253414d424100024e54204c414e4d414e20312e3000024e54204c4d20302e313200',
    'hex',
  ),
);
export const HTTP_GET = Uint8Array.from(Buffer.from('GET / HTTP/1.1\r\nHost: localhost\r\n\r\n'));
/** The start of a TLS 1.2 ClientHello record. */
export const TLS_CLIENT_HELLO = Uint8Array.from(
  Buffer.from('16030100a5010000a10303' + '00'.repeat(32) + '000002c02f0100', 'hex'),
);

export interface BackendMessage {
  type: string;
  body: Uint8Array;
}

/** Splits server bytes into messages; throws on a truncated one. */
export function readMessages(bytes: Uint8Array): BackendMessage[] {
  const messages: BackendMessage[] = [];
  let offset = 0;
  while (offset < bytes.length) {
    if (bytes.length - offset < 5) throw new Error(`truncated header at ${offset}`);
    const length = Buffer.from(bytes.buffer, bytes.byteOffset + offset + 1, 4).readUInt32BE(0);
    const end = offset + 1 + length;
    if (end > bytes.length) throw new Error(`truncated message at ${offset}`);
    messages.push({ type: String.fromCharCode(bytes[offset]!), body: bytes.slice(offset + 5, end) });
    offset = end;
  }
  return messages;
}

/** The fields of an ErrorResponse or NoticeResponse body, keyed by field letter. */
export function errorFields(body: Uint8Array): Record<string, string> {
  const fields: Record<string, string> = {};
  let offset = 0;
  while (body[offset] !== 0) {
    const code = String.fromCharCode(body[offset]!);
    const end = body.indexOf(0, offset + 1);
    fields[code] = Buffer.from(body.subarray(offset + 1, end)).toString('utf8');
    offset = end + 1;
  }
  if (offset !== body.length - 1) throw new Error('ErrorResponse has bytes after its terminator');
  return fields;
}
