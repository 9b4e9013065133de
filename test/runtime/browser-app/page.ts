import { Buffer } from 'buffer';
import postgres from 'postgres';
import { Socket } from 'pgwire-bridge/client';

/** What the page does with PostgreSQL, for the test to call and check: postgres.js in the browser. */
async function runQueries(options: {
  url: string;
  user: string;
  /** Absent when the bridge logs in for the page, with the role its token names. */
  password?: string;
  token?: string;
  rows: number;
  buffer?: false;
}) {
  const { url, token } = options;
  const connection = {
    user: options.user,
    pass: options.password,
    database: 'postgres',
    max: 1,
    socket: () => new Socket({ url, token, ...(options.buffer !== false && { Buffer }) }).connect(),
  };
  // postgres.js reads `socket` but its types do not declare it.
  const sql = postgres(connection as postgres.Options<{}>);
  try {
    const [answer] = await sql`SELECT ${41}::int + 1 AS answer, current_user AS "user"`;
    const big = await sql`SELECT g, md5(g::text) AS h FROM generate_series(1, ${options.rows}::int) AS g`;
    const sum = await sql.begin(async (tx) => {
      await tx`CREATE TEMP TABLE page_numbers (n int) ON COMMIT DROP`;
      await tx`INSERT INTO page_numbers SELECT generate_series(1, 10)`;
      const [row] = await tx`SELECT sum(n)::int AS total FROM page_numbers`;
      return row?.total as number;
    });
    const error = await sql`SELECT 1 / 0`.catch((e: { code: string }) => e.code);
    let heard: (payload: string) => void;
    const notified = new Promise<string>((resolve) => (heard = resolve));
    await sql.listen('page_channel', (payload) => heard(payload));
    await sql.notify('page_channel', 'hello from the page');
    return {
      answer,
      rows: big.length,
      last: big.at(-1),
      sum,
      error,
      notification: await notified,
      userAgent: navigator.userAgent,
    };
  } finally {
    await sql.end();
  }
}

(globalThis as { runQueries?: typeof runQueries }).runQueries = runQueries;
