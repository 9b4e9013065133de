/**
 * `npm run build`: the client as users import it. ESM bundles for `pgwire-bridge/client` and
 * `pgwire-bridge/net` (shared code split out, no runtime dependencies, no Node built-ins) and
 * their type declarations, in dist/.
 */
import { execFileSync } from 'node:child_process';
import { rm } from 'node:fs/promises';
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
execFileSync(process.execPath, ['node_modules/typescript/bin/tsc', '-p', 'tsconfig.build.json'], { stdio: 'inherit' });
console.log('built dist/client');
