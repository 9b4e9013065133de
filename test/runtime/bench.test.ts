import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('../..', import.meta.url));

/** `npm run bench`, made small: its figures mean nothing at this size, its shape does. */
function smallBench(): Promise<{ code: number | null; output: string }> {
  const child = spawn('npm', ['run', 'bench'], {
    cwd: root,
    env: { ...process.env, BENCH_QUERIES: '24', BENCH_BULK_MB: '1', BENCH_BULK_ROUNDS: '6' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => (output += chunk));
  child.stderr.on('data', (chunk: Buffer) => (output += chunk));
  return new Promise((resolve) => child.once('exit', (code) => resolve({ code, output })));
}

describe('npm run bench', () => {
  it('runs all three paths and prints each figure, with an interval for each row size', async () => {
    const { code, output } = await smallBench();
    expect(code, output).toBe(0);
    expect(output).toContain('SELECT 1 round trip, 24 queries each (µs):');
    expect(output).toContain('1 MB results streamed, 6 rounds, median (MB/s):');
    for (const path of ['direct', 'bridge', 'relay']) {
      expect(output).toMatch(new RegExp(`^  ${path} +median \\d+  p99 \\d+$`, 'm'));
      expect(output).toMatch(new RegExp(`^  ${path} +\\d+\\.\\d +\\d+\\.\\d$`, 'm'));
    }
    for (const key of ['select1_latency_ratio', 'bulk_throughput_ratio', 'relay_overhead_ratio_select1']) {
      expect(output).toMatch(new RegExp(`^${key}=\\d+\\.\\d\\d$`, 'm'));
    }
    for (const rows of ['1kb', '100kb']) {
      expect(output).toMatch(
        new RegExp(
          `^relay_overhead_ratio_${rows}_rows=\\d+\\.\\d\\d  \\(95% interval \\d+\\.\\d\\d–\\d+\\.\\d\\d\\)$`,
          'm',
        ),
      );
    }
    expect(output).toMatch(/^relay_overhead_ratio=\d+\.\d\d$/m);
    // Flow control's traffic on the bridge's path: each 1 MB result ends in at least one mark
    // (where the stream rests), and the client echoes every mark it gets.
    const flow =
      /^bridge flow control per result: 1 KB rows (\d+\.\d) marks, (\d+\.\d) echoes; 100 KB rows (\d+\.\d) marks, (\d+\.\d) echoes$/m.exec(
        output,
      );
    expect(flow, output).not.toBeNull();
    const [marks1kb, echoes1kb, marks100kb, echoes100kb] = flow!.slice(1).map(Number);
    expect(marks1kb).toBeGreaterThanOrEqual(1);
    expect(marks100kb).toBeGreaterThanOrEqual(1);
    expect(echoes1kb).toBe(marks1kb);
    expect(echoes100kb).toBe(marks100kb);
  }, 120_000);
});
