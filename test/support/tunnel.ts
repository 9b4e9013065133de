import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { PostgresInfo } from '../../dev/postgres.js';
import { postgres } from './clients.js';

const cli = fileURLToPath(new URL('../../dist/cli.js', import.meta.url));

export interface TunnelProcess {
  readonly host: string;
  readonly port: number;
  /** The connection string printed in the ready line. */
  readonly connectionString: string;
  readonly pid: number;
  /** What it wrote to stderr so far. */
  readonly stderr: string[];
  /** Ctrl-C: SIGINT, then its exit code. */
  stop(): Promise<number | null>;
}

/** The built `pgwire-bridge tunnel` command, as users run it, on a port of its choosing. */
export async function startTunnelProcess(url: string, extra: string[] = []): Promise<TunnelProcess> {
  const child: ChildProcess = spawn(process.execPath, [cli, 'tunnel', url, '--listen', '127.0.0.1:0', ...extra], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const stderr: string[] = [];
  child.stderr!.on('data', (chunk: Buffer) => stderr.push(chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const ready = await new Promise<string>((resolve, reject) => {
    const lines = createInterface({ input: child.stdout! });
    lines.once('line', resolve);
    void exited.then((code) => reject(new Error(`the tunnel exited (${code}): ${stderr.join('')}`)));
  });
  const match = /^pgwire-bridge tunnel ready: (postgresql:\/\/([\d.]+):(\d+)\/\?sslmode=disable) /.exec(ready);
  if (!match) throw new Error(`unexpected ready line: ${ready}`);
  return {
    connectionString: match[1]!,
    host: match[2]!,
    port: Number(match[3]),
    pid: child.pid!,
    stderr,
    stop: () => {
      child.kill('SIGINT');
      return exited;
    },
  };
}

/** Runs a command to its end; its exit code and output. */
export function runTool(
  command: string,
  args: string[],
  options: {
    env?: Record<string, string>;
    input?: string;
    /** Write the input and leave stdin open: the command waits for more (an idle psql). */
    keepStdinOpen?: boolean;
    timeoutMs?: number;
    onSpawn?: (pid: number) => void;
  } = {},
): Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { env: { ...process.env, ...options.env }, stdio: 'pipe' });
    options.onSpawn?.(child.pid!);
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${command} did not finish: ${stderr}`));
    }, options.timeoutMs ?? 20_000);
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
    if (options.keepStdinOpen) child.stdin.write(options.input ?? '');
    else child.stdin.end(options.input ?? '');
  });
}

/** psql through a tunnel, as a user would run it: the connection string from the ready line. */
export function psql(
  through: TunnelProcess,
  args: string[],
  options: Parameters<typeof runTool>[2] = {},
  db: PostgresInfo = postgres(),
) {
  return runTool('psql', [`${through.connectionString}&user=${db.user}&dbname=${db.database}`, '-X', ...args], {
    ...options,
    env: { PGPASSWORD: db.password, ...options.env },
  });
}
