import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';

const BRIDGE_MODULE = fileURLToPath(new URL('../../dev/bridge.ts', import.meta.url));

/** Runs `body` in a fresh Node process (TypeScript through tsx) with TMPDIR=`tmp`: its exit code and output. */
function runWithTmpdir(tmp: string, body: string): Promise<{ code: number | null; output: string }> {
  const script = `import { TidyMiniflare } from ${JSON.stringify(BRIDGE_MODULE)};\n${body}`;
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '--eval', script], {
    env: { ...process.env, TMPDIR: tmp },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => (output += chunk));
  child.stderr.on('data', (chunk: Buffer) => (output += chunk));
  return new Promise((resolve) => child.once('exit', (code) => resolve({ code, output })));
}

/** What is left in `dir`, but tsx's compile cache (tsx-UID), which the child keeps there too. */
const leftIn = (dir: string) => readdirSync(dir).filter((name) => !/^tsx-\d+$/.test(name));

const WORKER = `{ modules: true, script: 'export default { fetch: () => new Response("ok") }' }`;

describe('TidyMiniflare', () => {
  let tmp: string;
  afterEach(() => rmSync(tmp, { recursive: true, force: true }));

  it.each([
    ['when disposed', 'await mf.dispose();'],
    ['when the process exits without dispose()', 'process.exit(0);'],
  ])(
    'leaves nothing in the temporary directory %s',
    async (_, ending) => {
      tmp = mkdtempSync(join(tmpdir(), 'tidy-miniflare-'));
      const run = await runWithTmpdir(
        tmp,
        `const mf = new TidyMiniflare(${WORKER});
       console.log(await (await mf.dispatchFetch('http://localhost/')).text());
       ${ending}`,
      );
      expect(run, run.output).toMatchObject({ code: 0, output: expect.stringContaining('ok') });
      expect(leftIn(tmp)).toEqual([]);
    },
    60_000,
  );
});
