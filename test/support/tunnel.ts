import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

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
