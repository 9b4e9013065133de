/**
 * Soak: hostile clients of every kind test/e2e/bounds.test.ts names, against one local bridge,
 * while honest pg clients run checksummed queries through it and workerd's memory is sampled
 * from outside. `npm run soak` runs SOAK_HOSTILE attackers of each kind (default 20) beside
 * SOAK_HONEST honest clients (default 20) for SOAK_SECONDS (default 60); bounds.test.ts runs a
 * small one. Attackers run in a thread of their own (soak-attackers.ts).
 */
import { createHash } from 'node:crypto';
import pg from 'pg';
import WebSocket from 'ws';
import { Socket } from '../client/index.js';
import { WINDOW_TO_CLIENT_FLOOR_BYTES } from '../common/flow-control.js';
import { Worker } from 'node:worker_threads';
import { ATTACKS, ResidentWatch, type AttackTargets, type BridgeLog, type Login } from '../test/support/hostile.js';
import type { AttackerOrders, AttackerReport } from './soak-attackers.js';

const MiB = 1024 * 1024;

/** The query honest clients run, and how its answer is checked. */
const CHECKED_SQL = 'SELECT $1::int AS n, md5($1::text) AS h';
/** Every this many queries, one whose answer is larger than the window every session keeps toward its client. */
const LARGE_EVERY = 50;
const LARGE_SQL = 'SELECT md5(s) AS h, s FROM (SELECT repeat(md5($1::text), $2::int) AS s) AS t';
const md5 = (text: string): string => createHash('md5').update(text).digest('hex');

export interface HonestTally {
  completed: number;
  failed: number;
  corrupted: number;
}

/** A pg client through the client socket, from `ip` (CF-Connecting-IP). */
export function honestClient(url: string, login: Login, ip?: string): pg.Client {
  const headers = ip ? { 'CF-Connecting-IP': ip } : {};
  const client = new pg.Client({
    ...login,
    stream: () =>
      new Socket({
        url,
        WebSocket: WebSocket as never,
        webSocketOptions: { perMessageDeflate: false, headers },
      }) as never,
  });
  client.on('error', () => {});
  return client;
}

/** One checked query (the `n`th): true when the answer is right. */
export async function checkedQuery(client: pg.Client, n: number): Promise<boolean> {
  if (n % LARGE_EVERY === LARGE_EVERY - 1) {
    const repeats = Math.ceil((WINDOW_TO_CLIENT_FLOOR_BYTES * 1.5) / 32);
    const { rows } = await client.query<{ h: string; s: string }>(LARGE_SQL, [String(n), repeats]);
    return rows.length === 1 && rows[0]!.s === md5(String(n)).repeat(repeats) && rows[0]!.h === md5(rows[0]!.s);
  }
  const { rows } = await client.query<{ n: number; h: string }>(CHECKED_SQL, [n]);
  return rows.length === 1 && rows[0]!.n === n && rows[0]!.h === md5(String(n));
}

/**
 * Runs checked queries on `client`, one after another, until `stop` resolves. A failed query
 * counts as failed and ends the loop: a bridge that dropped an honest client is what this finds.
 */
export async function honestLoop(
  client: pg.Client,
  stop: Promise<void>,
  tally: HonestTally,
  pauseMs = 0,
): Promise<void> {
  let stopped = false;
  void stop.then(() => (stopped = true));
  for (let n = 0; !stopped; n++) {
    if (pauseMs > 0) await new Promise((resolve) => setTimeout(resolve, pauseMs));
    try {
      if (await checkedQuery(client, n)) tally.completed += 1;
      else tally.corrupted += 1;
    } catch {
      tally.failed += 1;
      return;
    }
  }
}

export interface SoakOptions {
  hostilePerKind: number;
  honest: number;
  seconds: number;
  /** The workerd process, for its resident memory. */
  pid: number;
  log: BridgeLog;
  /** Attack kinds to run; all by default. */
  kinds?: readonly string[];
  /** A pause before each honest query (default none: as fast as they go). */
  pauseMs?: number;
}

export interface SoakResult {
  readonly options: Omit<SoakOptions, 'log' | 'pid'>;
  readonly baselineBytes: number;
  readonly peakBytes: number;
  readonly honest: HonestTally;
  /** Per attack kind, how its runs ended. */
  readonly attacks: Record<string, Record<string, number>>;
  /** The most bytes one attacker that was held back received. */
  readonly heldReceivedMax: number;
  /** What the bridge logged: sessions by closeReason, refused upgrades by code. */
  readonly bridgeTally: Record<string, number>;
}

/** Honest clients log in first and run throughout; attackers of every kind cycle beside them, in their own thread, until the time is up. */
export async function runSoak(targets: AttackTargets, login: Login, options: SoakOptions): Promise<SoakResult> {
  const honest: HonestTally = { completed: 0, failed: 0, corrupted: 0 };
  const clients = await Promise.all(
    Array.from({ length: options.honest }, async (_, i) => {
      const client = honestClient(targets.database, login, `192.0.2.${i + 1}`);
      await client.connect();
      return client;
    }),
  );
  // Warm-up: the honest clients run for a while before the baseline, so that it counts what
  // serving them takes and the growth is what the attackers add.
  await honestRuns(clients, WARM_UP_MS, { completed: 0, failed: 0, corrupted: 0 }, options.pauseMs);
  const watch = new ResidentWatch(options.pid);
  const kinds = options.kinds ?? Object.keys(ATTACKS);
  const orders: AttackerOrders = { targets, login, kinds, perKind: options.hostilePerKind, seconds: options.seconds };
  // The thread loads TypeScript through tsx, as this process (tsx or vitest) does.
  const entry = JSON.stringify(new URL('./soak-attackers.ts', import.meta.url).href);
  const attackers = new Worker(`import('tsx/esm/api').then((tsx) => tsx.tsImport(${entry}, ${entry}))`, {
    eval: true,
    workerData: orders,
  });
  const report = new Promise<AttackerReport>((resolve, reject) => {
    attackers.once('message', resolve);
    attackers.once('error', reject);
  });
  await honestRuns(clients, options.seconds * 1000, honest, options.pauseMs);
  const { attacks, heldReceivedMax } = await report;
  await attackers.terminate();
  await Promise.all(clients.map((client) => client.end().catch(() => {})));
  watch.stop();
  return {
    options: { hostilePerKind: options.hostilePerKind, honest: options.honest, seconds: options.seconds, kinds },
    baselineBytes: watch.baseline,
    peakBytes: watch.peak,
    honest,
    attacks,
    heldReceivedMax,
    bridgeTally: options.log.tally(),
  };
}

/** How long honest clients run before the baseline is taken. */
const WARM_UP_MS = 3000;

/** Every client runs checked queries for `ms`. */
function honestRuns(clients: pg.Client[], ms: number, tally: HonestTally, pauseMs = 0): Promise<void[]> {
  const stop = new Promise<void>((resolve) => setTimeout(resolve, ms));
  return Promise.all(clients.map((client) => honestLoop(client, stop, tally, pauseMs)));
}
const mib = (bytes: number): string => `${(bytes / MiB).toFixed(1)} MiB`;

export function describeSoak(r: SoakResult): string {
  const lines = [
    `soak: ${r.options.hostilePerKind} attackers of each of ${r.options.kinds?.length} kinds beside ${r.options.honest} honest clients for ${r.options.seconds} s`,
    `  workerd RSS: baseline ${mib(r.baselineBytes)}, peak ${mib(r.peakBytes)} (+${mib(r.peakBytes - r.baselineBytes)}), sampled every 100 ms`,
    `  honest queries: completed=${r.honest.completed} failed=${r.honest.failed} corrupted=${r.honest.corrupted}`,
    `  attackers held back (not refused) received at most ${mib(r.heldReceivedMax)} each`,
    `  attack runs, by how each ended:`,
    ...Object.entries(r.attacks).map(([kind, tally]) => `    ${kind}: ${formatTally(tally)}`),
    `  the bridge's log, sessions by closeReason and refused upgrades by code:`,
    `    ${formatTally(r.bridgeTally)}`,
  ];
  return lines.join('\n');
}

const formatTally = (tally: Record<string, number>): string =>
  Object.entries(tally)
    .sort(([, a], [, b]) => b - a)
    .map(([key, count]) => `${key} ${count}`)
    .join(', ') || '(none)';
