import {
  COMMONLY_MAPPED_TO_NOTHING,
  L_CAT,
  NON_ASCII_SPACE,
  PROHIBITED_OUTPUT,
  RAND_AL_CAT,
  UNASSIGNED,
} from './saslprep-tables.js';

/** A table of code point ranges, as sorted [start, end] pairs, looked up by binary search. */
class CodePoints {
  private readonly bounds: Uint32Array;

  constructor(ranges: string) {
    const pairs = ranges.split(' ').flatMap((range) => {
      const [start, end = start] = range.split('-') as [string, string?];
      return [parseInt(start, 16), parseInt(end, 16)];
    });
    this.bounds = Uint32Array.from(pairs);
  }

  has(code: number): boolean {
    let low = 0;
    let high = this.bounds.length / 2 - 1;
    while (low <= high) {
      const middle = (low + high) >> 1;
      if (code < this.bounds[middle * 2]!) high = middle - 1;
      else if (code > this.bounds[middle * 2 + 1]!) low = middle + 1;
      else return true;
    }
    return false;
  }
}

const toSpace = new CodePoints(NON_ASCII_SPACE);
const toNothing = new CodePoints(COMMONLY_MAPPED_TO_NOTHING);
const prohibited = new CodePoints(PROHIBITED_OUTPUT);
const unassigned = new CodePoints(UNASSIGNED);
const randAL = new CodePoints(RAND_AL_CAT);
const leftToRight = new CodePoints(L_CAT);

/**
 * The password SCRAM-SHA-256 hashes, as PostgreSQL prepares it (src/common/saslprep.c, used both
 * when a password is set and when libpq logs in): SASLprep (RFC 4013) where it succeeds, and the
 * password unchanged where it does not, since PostgreSQL then falls back to the raw bytes.
 *
 * Two ways PostgreSQL differs from the RFC, followed here so the bridge derives the same key:
 * a pure-ASCII password is taken as it is (control characters included), and the prohibited,
 * unassigned and bidirectional checks look at the mapped characters before NFKC normalisation,
 * not after. Normalisation is the runtime's NFKC, whose Unicode version may differ from the
 * server's for characters assigned after Unicode 3.2 (which the unassigned check refuses anyway).
 */
export function saslprep(password: string): string {
  if (/^[\x00-\x7f]*$/.test(password)) return password;
  const mapped: number[] = [];
  for (const char of password) {
    const code = char.codePointAt(0)!;
    if (toSpace.has(code)) mapped.push(0x20);
    else if (!toNothing.has(code)) mapped.push(code);
  }
  // An empty result is prohibited: PostgreSQL keeps the password as it was.
  if (mapped.length === 0) return password;
  if (mapped.some((code) => prohibited.has(code) || unassigned.has(code))) return password;
  if (mapped.some((code) => randAL.has(code))) {
    const bidiOk =
      !mapped.some((code) => leftToRight.has(code)) && randAL.has(mapped[0]!) && randAL.has(mapped.at(-1)!);
    if (!bidiOk) return password;
  }
  return String.fromCodePoint(...mapped).normalize('NFKC');
}
