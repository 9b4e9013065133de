import { Buffer } from 'buffer';
import pg from 'pg';
import { Socket } from 'pgwire-bridge/client';

/** What the page does with PostgreSQL through pg, for the test to call and check. */
async function runPgQueries(options: { url: string; user: string; password: string; rows: number }) {
  const client = new pg.Client({
    user: options.user,
    password: options.password,
    database: 'postgres',
    stream: () => new Socket({ url: options.url, Buffer }) as never,
  });
  await client.connect();
  try {
    const answer = await client.query('SELECT $1::int + 1 AS answer, current_user AS "user"', [41]);
    const big = await client.query('SELECT g, md5(g::text) AS h FROM generate_series(1, $1::int) AS g', [options.rows]);
    await client.query('BEGIN');
    await client.query('CREATE TEMP TABLE pg_page_numbers (n int) ON COMMIT DROP');
    await client.query('INSERT INTO pg_page_numbers SELECT generate_series(1, 10)');
    const sum = await client.query('SELECT sum(n)::int AS total FROM pg_page_numbers');
    await client.query('COMMIT');
    const error = await client.query('SELECT 1 / 0').catch((e: { code: string }) => e.code);
    const notified = new Promise<string>((resolve) => client.once('notification', (n) => resolve(n.payload ?? '')));
    await client.query('LISTEN pg_page_channel');
    await client.query("NOTIFY pg_page_channel, 'hello from pg in the page'");
    return {
      answer: answer.rows[0],
      rows: big.rows.length,
      last: big.rows.at(-1),
      sum: sum.rows[0].total,
      error,
      notification: await notified,
    };
  } finally {
    await client.end();
  }
}

(globalThis as { runPgQueries?: typeof runPgQueries }).runPgQueries = runPgQueries;
