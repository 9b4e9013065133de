import { describe, expect, it } from 'vitest';
import { parseTunnelArgs } from '../../cli/args.js';

describe('pgwire-bridge tunnel arguments', () => {
  it('listens on loopback port 6543 unless told otherwise', () => {
    expect(parseTunnelArgs(['wss://bridge.example.com/v1'], {})).toEqual({
      url: 'wss://bridge.example.com/v1',
      host: '127.0.0.1',
      port: 6543,
      token: undefined,
    });
  });

  it('takes --listen and --token, with a space or =, and the token from PGWIRE_BRIDGE_TOKEN', () => {
    expect(parseTunnelArgs(['ws://b/v1', '--listen', '0.0.0.0:7000', '--token=abc'], {})).toMatchObject({
      host: '0.0.0.0',
      port: 7000,
      token: 'abc',
    });
    expect(parseTunnelArgs(['ws://b/v1', '--listen=[::1]:0'], { PGWIRE_BRIDGE_TOKEN: 'env' })).toMatchObject({
      host: '::1',
      port: 0,
      token: 'env',
    });
  });

  it.each([
    [[], /missing/],
    [['https://b/v1'], /ws:\/\/ or wss:\/\//],
    [['not a url'], /not a URL/],
    [['ws://b/v1', '--listen', '6543'], /host:port/],
    [['ws://b/v1', '--listen', 'h:70000'], /host:port/],
    [['ws://b/v1', '--verbose'], /unknown argument/],
  ])('says what is wrong with %j', (args, message) => {
    expect(parseTunnelArgs(args, {})).toMatch(message);
  });
});
