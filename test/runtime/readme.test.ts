import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningBridge } from '../../dev/bridge.js';
import { startTlsBridge } from '../support/clients.js';
import { readmeExample, readmeExamples } from '../support/readme.js';

/** Node 20 has a global WebSocket only behind this flag; later versions have it by default. */
const nodeFlags = typeof WebSocket === 'undefined' ? ['--experimental-websocket'] : [];

describe('the README examples', () => {
  let bridge: RunningBridge;
  beforeAll(async () => {
    bridge = await startTlsBridge();
  });
  afterAll(async () => {
    await bridge?.stop();
  });

  it('are the ones the suites run: Node here, the Worker in workers.test.ts, the page in browser.test.ts', () => {
    expect([...readmeExamples().keys()].sort()).toEqual(['browser', 'drizzle', 'pg', 'postgres', 'worker']);
  });

  for (const name of ['pg', 'postgres', 'drizzle']) {
    it(`${name}: runs in Node as written and prints what the README says`, async () => {
      const example = readmeExample(name, bridge.url);
      const file = example.writeTo(`${name}.ts`);
      const { stdout } = await promisify(execFile)(process.execPath, [...nodeFlags, '--import', 'tsx', file], {
        timeout: 20_000,
      });
      expect(example.expected.length).toBeGreaterThan(0);
      expect(stdout.trimEnd().split('\n')).toEqual(example.expected);
    });
  }
});
