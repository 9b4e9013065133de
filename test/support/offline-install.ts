import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const root = fileURLToPath(new URL('../..', import.meta.url));

interface LockEntry {
  version?: string;
  resolved?: string;
  integrity?: string;
  dependencies?: Record<string, string>;
  optionalDependencies?: Record<string, string>;
  [key: string]: unknown;
}

/**
 * Installs `tarball` and `packages` into the project at `dir`, as a user's `npm install` would,
 * without the network: the versions are the ones this repository's package-lock.json pins, so
 * npm takes every tarball from its cache (a lockfile with `resolved` needs no registry metadata).
 */
export async function installOffline(dir: string, tarball: string, packages: readonly string[]): Promise<void> {
  const lock = JSON.parse(readFileSync(`${root}package-lock.json`, 'utf8')) as {
    packages: Record<string, LockEntry>;
  };
  const own = JSON.parse(readFileSync(`${root}package.json`, 'utf8')) as {
    version: string;
    dependencies?: Record<string, string>;
    bin: Record<string, string>;
    overrides?: Record<string, string>;
  };
  const entries: Record<string, LockEntry> = {};
  // Node's lookup: the nearest node_modules/<name> at or above the dependent's own path.
  const visit = (name: string, from: string) => {
    let base = from;
    for (;;) {
      const path = `${base}${base ? '/' : ''}node_modules/${name}`;
      const entry = lock.packages[path];
      if (entry) {
        const at = path;
        if (entries[at]) return;
        const { dev: _dev, devOptional: _devOptional, peer: _peer, ...rest } = entry;
        const short = name.slice(name.lastIndexOf('/') + 1);
        entries[at] = { ...rest, resolved: `https://registry.npmjs.org/${name}/-/${short}-${entry.version}.tgz` };
        const deps = { ...entry.dependencies, ...entry.optionalDependencies };
        for (const dep of Object.keys(deps)) visit(dep, at);
        return;
      }
      if (base === '') return; // an optional dependency for another platform: not in this lock
      base = base.includes('/node_modules/') ? base.slice(0, base.lastIndexOf('/node_modules/')) : '';
    }
  };
  const dependencies: Record<string, string> = { 'pgwire-bridge': `file:${basename(tarball)}` };
  for (const name of packages) {
    dependencies[name] = lock.packages[`node_modules/${name}`]!.version!;
    visit(name, '');
  }
  for (const name of Object.keys(own.dependencies ?? {})) visit(name, '');
  entries['node_modules/pgwire-bridge'] = {
    version: own.version,
    resolved: `file:${basename(tarball)}`,
    bin: own.bin,
    integrity: `sha512-${createHash('sha512')
      .update(await readFile(tarball))
      .digest('base64')}`,
    ...(own.dependencies && { dependencies: own.dependencies }),
  };
  // The versions this repository overrides are the ones its lockfile (and npm's cache) holds.
  const overrides = own.overrides;
  const manifest = { name: 'app', version: '1.0.0', private: true, type: 'module', dependencies, overrides };
  await writeFile(join(dir, 'package.json'), JSON.stringify(manifest, null, 2));
  await writeFile(
    join(dir, 'package-lock.json'),
    JSON.stringify({
      name: 'app',
      version: '1.0.0',
      lockfileVersion: 3,
      requires: true,
      packages: { '': { name: 'app', version: '1.0.0', dependencies }, ...entries },
    }),
  );
  await promisify(execFile)('npm', ['ci', '--offline', '--no-audit', '--no-fund'], { cwd: dir, timeout: 120_000 });
}
