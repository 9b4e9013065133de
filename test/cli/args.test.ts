import { describe, expect, it } from 'vitest';
import { parseDevArgs, parseTunnelArgs } from '../../cli/args.js';
import { parsePostgresUrl } from '../../dev/environment.js';

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

describe('pgwire-bridge dev arguments', () => {
  it('defaults to the ports npm start uses, and takes --port, --pg-port, --postgres and --verbose', () => {
    expect(parseDevArgs([])).toEqual({ port: 8787, pgPort: 54329, postgresUrl: undefined, verbose: false });
    expect(parseDevArgs(['--port=9000', '--pg-port', '6000', '--postgres', 'postgres://u@h/d', '--verbose'])).toEqual({
      port: 9000,
      pgPort: 6000,
      postgresUrl: 'postgres://u@h/d',
      verbose: true,
    });
  });

  it.each([
    [['--port', '0'], /--port takes a port/],
    [['--pg-port=x'], /--pg-port takes a port/],
    [['--what'], /unknown argument/],
  ])('refuses %j', (args, message) => {
    expect(parseDevArgs(args)).toMatch(message);
  });

  it('reads an existing PostgreSQL from its URL, TLS only when sslmode asks for it', () => {
    expect(parsePostgresUrl('postgres://app:s%40cret@db.local:6432/shop')).toEqual({
      host: 'db.local',
      port: 6432,
      user: 'app',
      password: 's@cret',
      database: 'shop',
      tls: 'off',
    });
    expect(parsePostgresUrl('postgresql://localhost/?sslmode=require')).toMatchObject({
      user: 'postgres',
      tls: 'require',
    });
    expect(parsePostgresUrl('mysql://x')).toMatch(/postgres:\/\//);
    expect(parsePostgresUrl('postgres://h/d?sslmode=prefer')).toMatch(/sslmode/);
  });
});
