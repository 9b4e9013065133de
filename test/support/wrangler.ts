import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

/** This repository's wrangler, also for projects of their own (a user's, made by a test). */
const wrangler = fileURLToPath(new URL('../../node_modules/.bin/wrangler', import.meta.url));

/**
 * The Worker whose wrangler.toml is in `dir`, bundled by `wrangler deploy --dry-run` as its author
 * would deploy it: the script, and what wrangler printed.
 */
export async function bundleWithWrangler(dir: string): Promise<{ script: string; stdout: string }> {
  const outdir = await mkdtemp(join(tmpdir(), 'pgwire-bridge-wrangler-'));
  try {
    const { stdout } = await promisify(execFile)(wrangler, ['deploy', '--dry-run', '--outdir', outdir], {
      cwd: dir,
      env: { ...process.env, WRANGLER_SEND_METRICS: 'false' },
    });
    return { script: await readFile(join(outdir, 'index.js'), 'utf8'), stdout };
  } finally {
    await rm(outdir, { recursive: true, force: true });
  }
}
