import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { appendFile, chown, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { createTestCertificates } from '../../dev/certs.js';
import { freePort, onLoopback, type PostgresInfo } from '../../dev/postgres.js';

const run = promisify(execFile);

/** Debian's PostgreSQL 15 server (the `postgresql-15` package), whose pg_dump is the one on PATH. */
export const DEBIAN_PG_BIN = '/usr/lib/postgresql/15/bin';

export const debianPostgresInstalled = (): boolean => existsSync(join(DEBIAN_PG_BIN, 'initdb'));

/**
 * A PostgreSQL 15 server from Debian's binaries, with SCRAM and TLS like the embedded one: Debian's
 * pg_dump 15 refuses newer servers, so dump and restore are tested against this one. As root it
 * runs as the `postgres` user (initdb refuses root).
 */
export async function startDebianPostgres(): Promise<PostgresInfo & { stop(): Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), 'pgwire-bridge-pg15-'));
  const data = join(dir, 'data');
  const certs = await createTestCertificates();
  const password = 'bridge-test-password';
  const port = await freePort();
  const asRoot = process.getuid?.() === 0;
  const exec = (command: string, args: string[]) =>
    asRoot ? run('runuser', ['-u', 'postgres', '--', command, ...args]) : run(command, args);
  const owner = asRoot
    ? {
        uid: Number((await run('id', ['-u', 'postgres'])).stdout),
        gid: Number((await run('id', ['-g', 'postgres'])).stdout),
      }
    : null;
  if (owner) await chown(dir, owner.uid, owner.gid);
  await writeFile(join(dir, 'pw'), password, { mode: 0o644 });
  await exec(join(DEBIAN_PG_BIN, 'initdb'), [
    '-D',
    data,
    '-U',
    'postgres',
    '--auth=scram-sha-256',
    `--pwfile=${join(dir, 'pw')}`,
  ]);
  // The server refuses a key readable by others or owned by another user.
  for (const [name, contents] of [
    ['server.crt', certs.serverCertPem],
    ['server.key', certs.serverKeyPem],
  ] as const) {
    await writeFile(join(data, name), contents, { mode: 0o600 });
    if (owner) await chown(join(data, name), owner.uid, owner.gid);
  }
  await appendFile(
    join(data, 'postgresql.conf'),
    [`port = ${port}`, "listen_addresses = '127.0.0.1'", "unix_socket_directories = ''", 'ssl = on', ''].join('\n'),
  );
  await exec(join(DEBIAN_PG_BIN, 'pg_ctl'), ['-D', data, '-l', join(dir, 'log'), '-w', 'start']);
  return {
    ...onLoopback(port, password, certs.caPem),
    stop: async () => {
      await exec(join(DEBIAN_PG_BIN, 'pg_ctl'), ['-D', data, '-m', 'fast', '-w', 'stop']).catch(() => {});
      await rm(dir, { recursive: true, force: true });
    },
  };
}
