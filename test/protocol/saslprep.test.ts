import { describe, expect, it } from 'vitest';
import { saslprep } from '../../worker/protocol/saslprep.js';

describe('saslprep, as PostgreSQL prepares SCRAM passwords', () => {
  it.each([
    // RFC 4013, section 3 (the examples that succeed).
    ['I\u00adX', 'IX', 'SOFT HYPHEN mapped to nothing'],
    ['user', 'user', 'no transformation'],
    ['USER', 'USER', 'case preserved'],
    ['\u00aa', 'a', 'NFKC'],
    ['\u2168', 'IX', 'NFKC'],
    // Non-ASCII spaces become U+0020 before normalisation.
    ['a\u00a0b\u3000c', 'a b c', 'non-ASCII spaces'],
    ['caf\u0065\u0301', 'caf\u00e9', 'composed by NFKC'],
    ['\u00aa\u00a0pass', 'a pass', 'U+00AA and U+00A0 together'],
    ['\u200bx\u00e9', ' x\u00e9', 'U+200B is a space (C.1.2) before it is nothing (B.1), as in PostgreSQL'],
    ['\u05d0\u05d1', '\u05d0\u05d1', 'right-to-left only'],
  ])('%j → %j (%s)', (input, output) => {
    expect(saslprep(input)).toBe(output);
  });

  it.each([
    ['\u0007', 'ASCII is taken as it is, control characters included'],
    ['\u0007\u00e9', 'a prohibited character (C.2.1)'],
    ['\ue000\u00e9', 'private use (C.3)'],
    ['\u0221\u00e9', 'unassigned in Unicode 3.2 (A.1)'],
    ['\u0627\u0031', 'right-to-left text that does not end right-to-left (RFC 4013)'],
    ['\u05d0a\u05d1', 'right-to-left and left-to-right together'],
    ['\u00ad', 'nothing left after mapping'],
  ])('keeps %j unchanged: %s', (input) => {
    expect(saslprep(input)).toBe(input);
  });
});
