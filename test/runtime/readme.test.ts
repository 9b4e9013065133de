import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { tlsBridgeForSuite } from '../support/clients.js';
import { readmeExample, readmeExamples } from '../support/readme.js';

/** Node 20 has a global WebSocket only behind this flag; later versions have it by default. */
const nodeFlags = typeof WebSocket === 'undefined' ? ['--experimental-websocket'] : [];

describe('the README examples', () => {
  const suite = tlsBridgeForSuite();

  it('are the ones the suites run: Node here, the Worker in workers.test.ts, the page in browser.test.ts', () => {
    expect([...readmeExamples().keys()].sort()).toEqual(['browser', 'drizzle', 'mounted', 'pg', 'postgres', 'worker']);
  });

  for (const runtime of ['node', 'bun', 'deno'] as const) {
    for (const name of ['pg', 'postgres', 'drizzle']) {
      it(`${name}: runs in ${runtime} as written and prints what the README says`, async () => {
        const example = readmeExample(name, suite.bridge.url);
        const file = example.writeTo(`${name}.ts`);
        const [command, ...args] = commandLine(runtime, file);
        const { stdout } = await promisify(execFile)(command!, args, { timeout: 20_000 });
        expect(example.expected.length).toBeGreaterThan(0);
        // Each runtime formats console.log its own way; the values must be the same.
        expect(sameValues(stdout)).toEqual(example.expected.map(sameValues).join(''));
      });
    }
  }
});

function commandLine(runtime: 'node' | 'bun' | 'deno', file: string): string[] {
  const bin = (name: string) => fileURLToPath(new URL(`../../node_modules/.bin/${name}`, import.meta.url));
  if (runtime === 'node') return [process.execPath, ...nodeFlags, '--import', 'tsx', file];
  if (runtime === 'bun') return [bin('bun'), file];
  return [bin('deno'), 'run', '--allow-all', file];
}

/** Printed values without layout: no whitespace, one kind of quote, no trailing commas. */
function sameValues(printed: string): string {
  return printed
    .replace(/\s+/g, '')
    .replaceAll('"', "'")
    .replace(/,(?=[}\]])/g, '');
}
