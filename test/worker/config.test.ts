import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../worker/config.js';

describe('loadConfig', () => {
  it('applies the documented defaults', () => {
    expect(loadConfig({ PG_HOST: 'db.internal' })).toEqual({
      host: 'db.internal',
      port: 5432,
      tls: 'require',
      maxMessageBytes: 0x3fffffff - 1,
      connectTimeoutMs: 10000,
      startupTimeoutMs: 10000,
    });
  });

  it('reads every setting', () => {
    const config = loadConfig({
      PG_HOST: '10.0.0.5',
      PG_PORT: '6543',
      PG_TLS: 'off',
      MAX_MESSAGE_BYTES: '1048576',
      CONNECT_TIMEOUT_MS: '2500',
      STARTUP_TIMEOUT_MS: '500',
    });
    expect(config).toEqual({
      host: '10.0.0.5',
      port: 6543,
      tls: 'off',
      maxMessageBytes: 1048576,
      connectTimeoutMs: 2500,
      startupTimeoutMs: 500,
    });
  });

  it('lists every problem at once', () => {
    try {
      loadConfig({
        PG_PORT: '70000',
        PG_TLS: 'maybe',
        MAX_MESSAGE_BYTES: '3',
        CONNECT_TIMEOUT_MS: 'soon',
        STARTUP_TIMEOUT_MS: '0',
      });
      expect.unreachable();
    } catch (error) {
      expect(error).toBeInstanceOf(ConfigError);
      expect((error as ConfigError).problems).toHaveLength(6);
    }
  });
});
