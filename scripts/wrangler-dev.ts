/**
 * `npm run dev`: `wrangler dev --env dev` (wrangler.toml's [env.dev]: a PostgreSQL on this
 * machine over plain TCP), printing the WebSocket URL clients need once wrangler is ready.
 * Arguments go to wrangler: `npm run dev -- --port 8788 --var PG_PORT:5433`.
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const wrangler = fileURLToPath(new URL('../node_modules/.bin/wrangler', import.meta.url));
const child = spawn(
  wrangler,
  ['dev', '--env', 'dev', '--ip', '127.0.0.1', '--show-interactive-dev-session=false', ...process.argv.slice(2)],
  { stdio: ['inherit', 'pipe', 'inherit'], env: { WRANGLER_SEND_METRICS: 'false', ...process.env } },
);
let told = false;
child.stdout.on('data', (chunk: Buffer) => {
  process.stdout.write(chunk);
  const ready = /Ready on (http:\/\/[^\s]+)/.exec(chunk.toString().replace(/\x1b\[[0-9;]*m/g, ''));
  if (ready && !told) {
    told = true;
    const url = new URL('/v1', ready[1]!.replace(/^http/, 'ws'));
    console.log(`pgwire-bridge ready: ${url.href} (wrangler dev, settings from [env.dev] in wrangler.toml)`);
  }
});
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, () => child.kill(signal));
child.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
