import WebSocket from 'ws';
import { describe, expect, it } from 'vitest';
import { FLOW_CONTROL_PROTOCOL } from '../../common/subprotocols.js';
import { bridgeClient, tlsBridgeForSuite } from '../support/clients.js';
import { terminate } from '../support/wire.js';

// node-postgres's own quick-disconnect test: `client.connect(); client.end()` in one breath writes
// Terminate before any StartupMessage. PostgreSQL closes without a word and pg ends quietly; so
// must the bridge, or pg's connect() promise rejects with no handler and the process crashes.
const suite = tlsBridgeForSuite();

describe('a client that leaves before its startup', () => {
  it("is let go quietly: pg's connect(); end() rejects nothing", async () => {
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown) => unhandled.push(reason);
    process.on('unhandledRejection', onUnhandled);
    try {
      for (let i = 0; i < 5; i++) {
        const client = bridgeClient(suite.bridge.url);
        const errors: unknown[] = [];
        client.on('error', (error) => errors.push(error));
        void client.connect();
        await client.end();
        await new Promise((resolve) => setTimeout(resolve, 50));
        expect(errors).toEqual([]);
      }
      expect(unhandled).toEqual([]);
    } finally {
      process.off('unhandledRejection', onUnhandled);
    }
  });

  it('gets a normal close and not a byte when its first bytes are Terminate', async () => {
    const ws = new WebSocket(suite.bridge.url, [FLOW_CONTROL_PROTOCOL], { perMessageDeflate: false });
    const received: unknown[] = [];
    ws.on('message', (data, isBinary) => isBinary && received.push(data));
    await new Promise((resolve) => ws.once('open', resolve));
    ws.send(terminate());
    const code = await new Promise<number>((resolve) => ws.once('close', resolve));
    expect(code).toBe(1000);
    expect(received).toEqual([]);
  });
});
