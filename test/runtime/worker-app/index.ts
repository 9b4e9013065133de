import pg from 'pg';
import postgres from 'postgres';
import { Socket, type SocketOptions } from 'pgwire-bridge/client';

/** A Worker that uses PostgreSQL through the bridge, as an application on Cloudflare would. */
interface Env {
  /** The bridge's URL, reached with the global fetch. */
  BRIDGE_URL: string;
  /** The bridge as a service binding: another Worker, reached with its own fetch. */
  BRIDGE: Fetcher;
  PG_USER: string;
  PG_PASSWORD: string;
  TOKEN?: string;
}

const ROWS = 50_000;

/** The socket options for each way this app can reach the bridge (the `via` query parameter). */
function waysToTheBridge(env: Env): Record<string, SocketOptions> {
  return {
    network: { url: env.BRIDGE_URL, fetch, token: env.TOKEN },
    'network-without-token': { url: env.BRIDGE_URL, fetch },
    binding: { url: 'ws://bridge.internal/v1', fetch: env.BRIDGE.fetch.bind(env.BRIDGE) },
    // The global WebSocket, as in browsers.
    constructor: { url: env.BRIDGE_URL, token: env.TOKEN },
    nowhere: { url: 'ws://127.0.0.1:9/v1', fetch },
  };
}

export default {
  async fetch(request: Request, env: Env): Promise<Response> {
    const { pathname, searchParams } = new URL(request.url);
    const socketOptions = waysToTheBridge(env)[searchParams.get('via') ?? 'network'];
    if (!socketOptions) return new Response('unknown way to the bridge', { status: 400 });
    try {
      if (pathname === '/pg') return Response.json(await withPg(env, socketOptions));
      if (pathname === '/postgres') return Response.json(await withPostgresJs(env, socketOptions));
      return new Response('not found', { status: 404 });
    } catch (error) {
      const { message, code } = error as { message: string; code?: string };
      return Response.json({ error: { message, code } }, { status: 500 });
    }
  },
};

async function withPg(env: Env, socketOptions: SocketOptions) {
  const client = new pg.Client({
    user: env.PG_USER,
    password: env.PG_PASSWORD,
    database: 'postgres',
    // pg's types ask for a Node Duplex; the socket has the part of it pg uses.
    stream: () => new Socket(socketOptions) as never,
  });
  await client.connect();
  try {
    const answer = await client.query('SELECT $1::int + 1 AS answer, current_user AS "user"', [41]);
    const big = await client.query('SELECT g, md5(g::text) AS h FROM generate_series(1, $1::int) AS g', [ROWS]);
    const error = await client.query('SELECT * FROM no_such_table').catch((e: { code: string }) => e.code);
    return {
      answer: answer.rows[0],
      rows: big.rows.length,
      last: big.rows.at(-1),
      error,
    };
  } finally {
    await client.end();
  }
}

async function withPostgresJs(env: Env, socketOptions: SocketOptions) {
  // postgres.js reads `socket` but its types do not declare it.
  const options = {
    user: env.PG_USER,
    pass: env.PG_PASSWORD,
    database: 'postgres',
    max: 1,
    socket: () => new Socket(socketOptions).connect(),
  };
  const sql = postgres(options as postgres.Options<{}>);
  try {
    const [answer] = await sql`SELECT ${41}::int + 1 AS answer, current_user AS "user"`;
    const big = await sql`SELECT g, md5(g::text) AS h FROM generate_series(1, ${ROWS}::int) AS g`;
    const error = await sql`SELECT * FROM no_such_table`.catch((e: { code: string }) => e.code);
    // postgres.js cancels by sending a CancelRequest on a new socket, opened with fetch like the first.
    const sleeping = sql`SELECT pg_sleep(30.3)`;
    const cancelled = sleeping.then(
      () => 'not cancelled',
      (e: { code: string }) => e.code,
    );
    await untilSleeping(postgres(options as postgres.Options<{}>));
    sleeping.cancel();
    return { answer, rows: big.length, last: big.at(-1), error, cancelled: await cancelled };
  } finally {
    await sql.end();
  }
}

/** Until this app's pg_sleep runs on the server (a CancelRequest sent earlier would find nothing to cancel). */
async function untilSleeping(watcher: postgres.Sql): Promise<void> {
  try {
    for (let i = 0; i < 100; i++) {
      const [row] =
        await watcher`SELECT count(*)::int AS n FROM pg_stat_activity WHERE state = 'active' AND query = 'SELECT pg_sleep(30.3)'`;
      if (row?.n > 0) return;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    throw new Error('the pg_sleep never started');
  } finally {
    await watcher.end();
  }
}
