import { concatBytes, readUint32 } from './bytes.js';
import { FRAME_HEADER_LENGTH, MIN_FRAME_LENGTH } from './constants.js';
import { BridgeError, type BridgeErrorCode } from './errors.js';

/**
 * Cuts the server→bridge byte stream into whole messages (protocol-overview, "Messaging
 * Overview"), for the few places where the bridge itself reads what PostgreSQL says. No I/O.
 * A length below 4 or above `maxLength` is refused with `errorCode`: it cannot come from
 * PostgreSQL at that point, and waiting for it to complete would hold its bytes in memory.
 */
export class BackendFramer {
  private buffer: Uint8Array = new Uint8Array();

  constructor(
    private readonly maxLength: number,
    private readonly errorCode: BridgeErrorCode,
  ) {}

  push(chunk: Uint8Array): void {
    this.buffer = this.buffer.length === 0 ? chunk : concatBytes(this.buffer, chunk);
  }

  /** The next whole message (type byte, length, body), or null until more bytes arrive. */
  next(): Uint8Array | null {
    if (this.buffer.length < FRAME_HEADER_LENGTH) return null;
    const length = readUint32(this.buffer, 1);
    if (length < MIN_FRAME_LENGTH || length > this.maxLength) {
      throw new BridgeError(this.errorCode, 'the database server sent a message of an invalid length');
    }
    if (this.buffer.length < length + 1) return null;
    const message = this.buffer.subarray(0, length + 1);
    this.buffer = this.buffer.subarray(length + 1);
    return message;
  }

  /** The bytes after the last message taken, which may end in the middle of a message. */
  rest(): Uint8Array {
    return this.buffer;
  }
}
