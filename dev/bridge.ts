import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Readable } from 'node:stream';
import { build } from 'esbuild';
import { Miniflare, type MiniflareOptions, type WorkerOptions } from 'miniflare';
import type { Env } from '../worker/config.js';
import { BRIDGE_PATH } from '../worker/paths.js';

const root = fileURLToPath(new URL('..', import.meta.url));

/** Set by scripts/build.ts in the package's command, which ships no wrangler.toml. */
declare const PGWIRE_BRIDGE_COMPATIBILITY_DATE: string | undefined;

/** The compatibility date deployed with wrangler.toml, so local runs match production. */
export const compatibilityDate: string =
  typeof PGWIRE_BRIDGE_COMPATIBILITY_DATE === 'string'
    ? PGWIRE_BRIDGE_COMPATIBILITY_DATE
    : /^compatibility_date\s*=\s*"([^"]+)"/m.exec(readFileSync(`${root}/wrangler.toml`, 'utf8'))![1]!;

const bundles = new Map<string, Promise<string>>();

/**
 * The Worker bundled as wrangler bundles it (Miniflare runs JavaScript, not TypeScript); `entry`
 * names another module to bundle the same way (the benchmark's Worker).
 */
export function bundleWorker(entry = `${root}/worker/index.ts`): Promise<string> {
  let bundle = bundles.get(entry);
  if (bundle) return bundle;
  bundle = build({
    entryPoints: [entry],
    bundle: true,
    format: 'esm',
    platform: 'neutral',
    target: 'es2022',
    external: ['cloudflare:*'],
    write: false,
  }).then((result) => result.outputFiles[0]!.text);
  bundles.set(entry, bundle);
  return bundle;
}

export interface RunningBridge {
  /** ws:// URL of the bridge endpoint. */
  readonly url: string;
  /** The workerd process running the Worker (Linux), for measuring its memory from outside. */
  readonly pid: number | null;
  stop(): Promise<void>;
}

export interface BridgeOptions {
  bindings: Env;
  /** Added to the certificates workerd trusts for outbound TLS, as a private CA would be. */
  trustedCaPem?: string;
  /** A bundle built elsewhere (by wrangler, say) instead of this module's esbuild bundle. */
  script?: string;
  /** Binds METRICS to a (local) Workers Analytics Engine dataset of this name. */
  analyticsEngineDataset?: string;
  /** Binds RATE_LIMITER to a Workers Rate Limiting binding (Miniflare enforces it locally). */
  rateLimit?: { limit: number; period: 10 | 60 };
  /** Binds HYPERDRIVE to a local Hyperdrive for this connection string, as `wrangler dev` does. */
  hyperdrive?: string;
}

/** Miniflare's options for one bridge Worker, for a Miniflare that runs other Workers beside it. */
export async function bridgeWorkerOptions(options: BridgeOptions): Promise<WorkerOptions> {
  const script = options.script ?? (await bundleWorker());
  return {
    modules: [{ type: 'ESModule', path: 'worker.js', contents: script }],
    compatibilityDate,
    bindings: { ...options.bindings },
    ...(options.analyticsEngineDataset && {
      analyticsEngineDatasets: { METRICS: { dataset: options.analyticsEngineDataset } },
    }),
    // Miniflare requires a namespace, as Cloudflare does: wrangler.toml's.
    ...(options.rateLimit && {
      ratelimits: { RATE_LIMITER: { simple: options.rateLimit, namespace_id: '7431' } },
    }),
    ...(options.hyperdrive && { hyperdrives: { HYPERDRIVE: options.hyperdrive } }),
    ...(options.trustedCaPem && {
      outboundService: {
        network: { allow: ['public', 'private'], tlsOptions: { trustedCertificates: [options.trustedCaPem] } },
      },
    }),
  };
}

/** The variables os.tmpdir() reads, on POSIX and on Windows. */
const TMPDIR_VARIABLES = ['TMPDIR', 'TEMP', 'TMP'] as const;

/**
 * A Miniflare that leaves no temporary directory behind. Miniflare starts removing its own when
 * disposed but does not wait for it, so a process that exits right after (a test worker) leaves
 * one in the system's temporary directory per instance; this one's lives in a directory of ours,
 * removed before dispose() resolves.
 */
export class TidyMiniflare extends Miniflare {
  private readonly ownTmpDir: string;
  /** A process that exits without dispose(): Miniflare's own exit hook empties the directory, this removes it. */
  private readonly removeOnExit = () => rmSync(this.ownTmpDir, { recursive: true, force: true });

  constructor(options: MiniflareOptions) {
    const dir = mkdtempSync(join(tmpdir(), 'pgwire-bridge-'));
    const saved = TMPDIR_VARIABLES.map((name) => process.env[name]);
    // Miniflare picks its directory under os.tmpdir() as it is constructed, synchronously.
    for (const name of TMPDIR_VARIABLES) process.env[name] = dir;
    try {
      super(options);
    } catch (error) {
      rmSync(dir, { recursive: true, force: true });
      throw error;
    } finally {
      TMPDIR_VARIABLES.forEach((name, i) => {
        if (saved[i] === undefined) delete process.env[name];
        else process.env[name] = saved[i];
      });
    }
    this.ownTmpDir = dir;
    process.on('exit', this.removeOnExit);
  }

  override async dispose(): Promise<void> {
    try {
      await super.dispose();
    } finally {
      process.off('exit', this.removeOnExit);
      await rm(this.ownTmpDir, { recursive: true, force: true, maxRetries: 5, retryDelay: 100 });
    }
  }
}

/** The Worker running in workerd through Miniflare, listening on 127.0.0.1. */
export async function startBridge(
  options: BridgeOptions & { port?: number; log?: (line: string) => void },
): Promise<RunningBridge> {
  const before = workerdChildren();
  const workerOptions = await bridgeWorkerOptions(options);
  const start = async () => {
    const mf = new TidyMiniflare({
      ...workerOptions,
      host: '127.0.0.1',
      port: options.port ?? 0,
      handleRuntimeStdio: (stdout: Readable, stderr: Readable) => {
        const log = options.log ?? (() => {});
        stdout.on('data', (chunk: Buffer) => log(chunk.toString()));
        stderr.on('data', (chunk: Buffer) => log(chunk.toString()));
      },
    });
    try {
      return { mf, base: await mf.ready };
    } catch (error) {
      await mf.dispose().catch(() => {});
      throw error;
    }
  };
  const { mf, base } = options.hyperdrive ? await withQuietProxySockets(start, options.log) : await start();
  const started = workerdChildren().filter((pid) => !before.includes(pid));
  return {
    url: new URL(BRIDGE_PATH, base.href.replace(/^http/, 'ws')).href,
    pid: started.length === 1 ? started[0]! : null,
    stop: () => mf.dispose(),
  };
}

/**
 * Miniflare's local Hyperdrive proxy (4.20260730) pipes each connection from workerd to the
 * database with no 'error' listener on either socket, so a reset — PostgreSQL closing a cancel
 * connection at once — is an uncaught exception in the process running Miniflare. The servers
 * Miniflare creates while it starts give each connection, and each socket piped into it, a
 * listener that logs the error instead (the other socket closes when its own peer does). Starts
 * that overlap share one patch, taken off when the last one is done.
 */
let quietStarts = 0;
const createServer = net.createServer;
async function withQuietProxySockets<T>(start: () => Promise<T>, log: (line: string) => void = () => {}): Promise<T> {
  const quiet = (error: Error) => log(`Hyperdrive proxy socket: ${error.message}\n`);
  if (quietStarts++ === 0) {
    net.createServer = ((...args: Parameters<typeof net.createServer>) =>
      createServer(...args).on('connection', (socket: net.Socket) => {
        socket.on('error', quiet);
        socket.on('pipe', (source) => source.on('error', quiet));
      })) as typeof net.createServer;
  }
  try {
    return await start();
  } finally {
    if (--quietStarts === 0) net.createServer = createServer;
  }
}

/** Process ids of the workerd processes this process started (Linux; empty elsewhere). */
function workerdChildren(): number[] {
  try {
    return readdirSync(`/proc/${process.pid}/task`)
      .flatMap((task) => readFileSync(`/proc/${process.pid}/task/${task}/children`, 'utf8').split(' '))
      .filter((pid) => pid.trim() !== '')
      .map(Number)
      .filter((pid) => {
        try {
          return readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === 'workerd';
        } catch {
          return false;
        }
      });
  } catch {
    return [];
  }
}

/** A process's resident memory in bytes (VmRSS, Linux), read from outside it. */
export function residentBytes(pid: number): number {
  const match = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!match) throw new Error(`no VmRSS for process ${pid}`);
  return Number(match[1]) * 1024;
}
