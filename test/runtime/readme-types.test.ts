import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { readmeExample, readmeExamples } from '../support/readme.js';

const root = fileURLToPath(new URL('../..', import.meta.url));

describe('the README examples', () => {
  it('type-check as written with tsc --strict, against the built package', async () => {
    const files = [...readmeExamples().keys()].map((name) =>
      readmeExample(name, 'ws://127.0.0.1:8787/v1').writeTo(`types/${name}.ts`),
    );
    const config = `${root}.readme-examples/types/tsconfig.json`;
    writeFileSync(
      config,
      JSON.stringify({
        compilerOptions: {
          strict: true,
          target: 'ES2022',
          module: 'ESNext',
          moduleResolution: 'Bundler',
          lib: ['ES2023', 'DOM'],
          types: ['node'],
          skipLibCheck: true,
          noEmit: true,
        },
        files,
      }),
    );
    const tsc = `${root}node_modules/typescript/bin/tsc`;
    const result = await promisify(execFile)(process.execPath, [tsc, '-p', config]).catch(
      (error: { stdout: string }) => error,
    );
    expect(result.stdout).toBe('');
  }, 60_000);
});
