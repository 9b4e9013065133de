import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../..', import.meta.url));
/** The address the README's examples use: the one `npm start` prints. */
const README_BRIDGE_URL = 'ws://127.0.0.1:8787/v1';
const MARKER = /<!-- example: ([\w-]+) -->\s*```\w*\n([\s\S]*?)\n```/g;

/** The examples in README.md: each code block right after an `<!-- example: name -->` line. */
export function readmeExamples(): Map<string, string> {
  const readme = readFileSync(`${root}README.md`, 'utf8');
  return new Map([...readme.matchAll(MARKER)].map((m) => [m[1]!, m[2]!]));
}

export interface ReadmeExample {
  /** The example's code, talking to `bridgeUrl` instead of the README's address. */
  code: string;
  /** What the example says it prints: its `// → …` comments, in order. */
  expected: string[];
  /** Writes the code into the repository (so that `pgwire-bridge/client` resolves to this package), returning the path. */
  writeTo(relativePath: string): string;
}

export function readmeExample(name: string, bridgeUrl: string): ReadmeExample {
  const source = readmeExamples().get(name);
  if (source === undefined) throw new Error(`README.md has no example named ${name}`);
  const code = source.replaceAll(README_BRIDGE_URL, bridgeUrl);
  return {
    code,
    expected: [...code.matchAll(/\/\/ → (.*)$/gm)].map((m) => m[1]!),
    writeTo(relativePath) {
      const path = `${root}.readme-examples/${relativePath}`;
      mkdirSync(dirname(path), { recursive: true });
      writeFileSync(path, code);
      return path;
    },
  };
}
