import { describe, expect, it } from 'vitest';
import {
  chooseSubprotocol,
  echoMessage,
  FLOW_CONTROL_PROTOCOL,
  KEEPALIVE,
  markMessage,
  parseFlowMessage,
} from '../../common/subprotocols.js';

describe('flow-control messages', () => {
  it('reads marks, echoes and the keepalive', () => {
    expect(parseFlowMessage(markMessage('3f'))).toEqual({ kind: 'mark', id: '3f' });
    expect(parseFlowMessage(echoMessage('Ab-_9'))).toEqual({ kind: 'echo', id: 'Ab-_9' });
    expect(parseFlowMessage(KEEPALIVE)).toEqual({ kind: 'keepalive' });
    expect(parseFlowMessage(`m${'x'.repeat(24)}`)).toEqual({ kind: 'mark', id: 'x'.repeat(24) });
  });

  it.each(['', 'm', 'a', '1048576', '0', 'x12', 'm 1', 'a1 ', 'm1,2', `m${'x'.repeat(25)}`, 'kk', 'a\u00e9'])(
    'rejects %j',
    (text) => {
      expect(parseFlowMessage(text)).toBeNull();
    },
  );
});

describe('the subprotocol an upgrade is answered with', () => {
  it('is flow control when the client offers it, whatever else it offers', () => {
    expect(chooseSubprotocol(['pgwire-bridge.token.abc', FLOW_CONTROL_PROTOCOL])).toBe(FLOW_CONTROL_PROTOCOL);
    expect(chooseSubprotocol([FLOW_CONTROL_PROTOCOL])).toBe(FLOW_CONTROL_PROTOCOL);
  });

  it('is the token carrier when that is all the bridge knows of what was offered', () => {
    expect(chooseSubprotocol(['chat', 'pgwire-bridge.token.abc'])).toBe('pgwire-bridge.token.abc');
  });

  it("is none when nothing offered is the bridge's, the retired v1 included", () => {
    expect(chooseSubprotocol([''])).toBeNull();
    expect(chooseSubprotocol(['chat', 'pgwire-bridge.v1'])).toBeNull();
  });
});
