import { readFile, readdir } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('../..', import.meta.url));

describe('the package users install', () => {
  it('exports the client and the net module as ESM with types, and depends on nothing at run time', async () => {
    const pkg = JSON.parse(await readFile(`${root}package.json`, 'utf8'));
    expect(pkg.type).toBe('module');
    // The Worker's one dependency; the client's bundles import nothing (below).
    expect(pkg.dependencies).toEqual({ jose: expect.any(String) });
    for (const meta of Object.values(pkg.peerDependenciesMeta)) expect(meta).toEqual({ optional: true });
    expect(pkg.exports['./worker']).toEqual({ types: './dist/worker/index.d.ts', import: './dist/worker/index.js' });
    expect(pkg.scripts.prepack).toBe('npm run build');
    expect(pkg.exports['./client']).toEqual({ types: './dist/client/index.d.ts', import: './dist/client/index.js' });
    expect(pkg.exports['./net']).toEqual({ types: './dist/client/net.d.ts', import: './dist/client/net.js' });
    expect(pkg.sideEffects).toBe(false);
  });

  it('ships bundles that import only each other: no packages, no Node built-ins, no require', async () => {
    const files = (await readdir(`${root}dist/client`)).filter((f) => f.endsWith('.js'));
    expect(files.length).toBeGreaterThanOrEqual(2);
    for (const file of files) {
      const code = await readFile(`${root}dist/client/${file}`, 'utf8');
      const specifiers = [...code.matchAll(/(?:import|export)\s[^'"]*?from\s*["']([^"']+)["']/g)].map((m) => m[1]!);
      expect(
        specifiers.every((s) => s.startsWith('./')),
        `${file}: ${specifiers.join(', ')}`,
      ).toBe(true);
      expect(code).not.toMatch(/\brequire\(|["']node:/);
    }
  });

  it('has the pgwire-bridge command, Node scripts that import only Node built-ins, each other and optional peers', async () => {
    const pkg = JSON.parse(await readFile(`${root}package.json`, 'utf8'));
    expect(pkg.bin).toEqual({ 'pgwire-bridge': 'dist/cli.js' });
    const code = await readFile(`${root}dist/cli.js`, 'utf8');
    expect(code.startsWith('#!/usr/bin/env node\n')).toBe(true);
    const chunks = (await readdir(`${root}dist/cli`)).map((file) => readFile(`${root}dist/cli/${file}`, 'utf8'));
    const specifiers = [code, ...(await Promise.all(chunks))].flatMap((text) => [
      ...text.matchAll(/(?:import|export)\s[^'"]*?from\s*["']([^"']+)["']|import\s*\(?["']([^"']+)["']\)?/g),
    ]);
    const peers = Object.keys(pkg.peerDependencies);
    expect(
      specifiers
        .map((m) => m[1] ?? m[2])
        .filter((s) => !s!.startsWith('node:') && !s!.startsWith('./') && !peers.includes(s!)),
    ).toEqual([]);
  });

  it('works when imported by its package name', async () => {
    const client = await import('pgwire-bridge/client');
    const net = await import('pgwire-bridge/net');
    expect(typeof client.Socket).toBe('function');
    expect(new net.Socket({ url: 'ws://127.0.0.1:1/v1' })).toBeInstanceOf(client.Socket);
    expect(net.isIP('10.0.0.1')).toBe(4);
    expect(() => new net.Socket()).toThrow(/configure/);
  });

  it('is tree-shakeable: a bundle that takes one small export leaves the socket out', async () => {
    const bundleOf = async (contents: string) => {
      const result = await build({
        stdin: { contents, resolveDir: root, loader: 'js' },
        bundle: true,
        format: 'esm',
        platform: 'browser',
        write: false,
      });
      return result.outputFiles[0]!.text;
    };
    const whole = await bundleOf("import { Socket } from 'pgwire-bridge/client'; console.log(Socket);");
    expect(whole).toMatch(/openWithFetch/);
    for (const contents of [
      "import { SocketError } from 'pgwire-bridge/client'; console.log(SocketError);",
      "import { isIP } from 'pgwire-bridge/net'; console.log(isIP);",
    ]) {
      const code = await bundleOf(contents);
      expect(code).not.toMatch(/openWithFetch|Emitter|addEventListener/);
      expect(code.length).toBeLessThan(whole.length / 10);
    }
  });
});
