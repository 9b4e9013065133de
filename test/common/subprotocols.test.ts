import { describe, expect, it } from 'vitest';
import {
  chooseSubprotocol,
  FLOW_ACK_BYTES,
  FLOW_WINDOW_BYTES,
  KEEPALIVE,
  parseAck,
} from '../../worker/protocol/subprotocols.js';

describe('flow-control acknowledgements', () => {
  it('reads a decimal byte count, 0 being the keepalive', () => {
    expect(parseAck(KEEPALIVE)).toBe(0);
    expect(parseAck('1')).toBe(1);
    expect(parseAck('1048576')).toBe(1048576);
    expect(parseAck('9999999999')).toBe(9999999999);
  });

  it.each(['', '00', '-1', '01', '1.5', ' 1', '1 ', '1e6', 'ack', '12345678901'])('rejects %j', (text) => {
    expect(parseAck(text)).toBeNull();
  });

  it('acknowledges often enough that a client reading everything never stalls the window', () => {
    expect(FLOW_ACK_BYTES).toBeLessThan(FLOW_WINDOW_BYTES);
  });
});

describe('the subprotocol an upgrade is answered with', () => {
  it('is flow control when the client offers it, whatever else it offers', () => {
    expect(chooseSubprotocol(['pgwire-bridge.token.abc', 'pgwire-bridge.v1'])).toBe('pgwire-bridge.v1');
    expect(chooseSubprotocol(['pgwire-bridge.v1'])).toBe('pgwire-bridge.v1');
  });

  it('is the token carrier when that is all the bridge knows of what was offered', () => {
    expect(chooseSubprotocol(['chat', 'pgwire-bridge.token.abc'])).toBe('pgwire-bridge.token.abc');
  });

  it("is none when nothing offered is the bridge's", () => {
    expect(chooseSubprotocol([''])).toBeNull();
    expect(chooseSubprotocol(['chat', 'pgwire-bridge.v2'])).toBeNull();
  });
});
