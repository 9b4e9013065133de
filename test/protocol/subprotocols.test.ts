import { describe, expect, it } from 'vitest';
import { FLOW_ACK_BYTES, FLOW_WINDOW_BYTES, parseAck } from '../../worker/protocol/subprotocols.js';

describe('flow-control acknowledgements', () => {
  it('reads a positive decimal byte count', () => {
    expect(parseAck('1')).toBe(1);
    expect(parseAck('1048576')).toBe(1048576);
    expect(parseAck('9999999999')).toBe(9999999999);
  });

  it.each(['', '0', '-1', '01', '1.5', ' 1', '1 ', '1e6', 'ack', '12345678901'])('rejects %j', (text) => {
    expect(parseAck(text)).toBeNull();
  });

  it('acknowledges often enough that a client reading everything never stalls the window', () => {
    expect(FLOW_ACK_BYTES).toBeLessThan(FLOW_WINDOW_BYTES);
  });
});
