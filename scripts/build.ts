/**
 * `npm run build`: the client as users import it. ESM bundles for `pgwire-bridge/client` and
 * `pgwire-bridge/net` (shared code split out, no runtime dependencies, no Node built-ins) and
 * their type declarations, in dist/; and the `pgwire-bridge` command (dist/cli.js, for Node).
 */
import { execFileSync } from 'node:child_process';
import { chmod, rm } from 'node:fs/promises';
import { build } from 'esbuild';

await rm('dist', { recursive: true, force: true });
await build({
  entryPoints: { 'client/index': 'client/index.ts', 'client/net': 'client/net.ts' },
  outdir: 'dist',
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'neutral',
  target: 'es2022',
  sourcemap: true,
  chunkNames: 'client/[name]-[hash]',
});
// The command (`bin`): the tunnel, for Node, with `ws` left to the user's node_modules.
await build({
  entryPoints: { cli: 'cli/main.ts' },
  outdir: 'dist',
  bundle: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  external: ['ws'],
  banner: { js: '#!/usr/bin/env node' },
});
await chmod('dist/cli.js', 0o755);
execFileSync(process.execPath, ['node_modules/typescript/bin/tsc', '-p', 'tsconfig.build.json'], { stdio: 'inherit' });
console.log('built dist/client and dist/cli.js');
