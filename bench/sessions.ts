/**
 * `npm run bench:sessions`: SESSIONS (default 1,000) concurrent bridged sessions against one local
 * workerd. Prints how long opening them took, workerd's resident memory per idle session (every
 * session logged in and waiting), and per session that streams (every session reading a
 * STREAM_BYTES result at once, the peak). PostgreSQL is a small stand-in in this process that
 * logs every client in at once and answers a query with rows of 1 KB, minding TCP backpressure,
 * so that a thousand backends do not crowd the machine; workerd does what it does for a real one.
 */
import { createServer, type Server, type Socket as TcpSocket } from 'node:net';
import pg from 'pg';
import WebSocket from 'ws';
import { Socket } from '../client/index.js';
import { residentBytes, startBridge } from '../dev/bridge.js';

const SESSIONS = Number(process.env.SESSIONS ?? 1000);
const STREAM_BYTES = Number(process.env.STREAM_BYTES ?? 2 * 1024 * 1024);
const ROW_BYTES = 1000;

const server = await standInPostgres();
const bridge = await startBridge({
  bindings: {
    PG_HOST: '127.0.0.1',
    PG_PORT: String(server.port),
    PG_TLS: 'off',
    MAX_SESSIONS: String(SESSIONS + 10),
    MAX_LOGINS_IN_PROGRESS: '256',
  },
});
const pid = bridge.pid;
if (pid === null) throw new Error('no workerd process to measure');
const mib = (bytes: number) => (bytes / 2 ** 20).toFixed(1);
const kib = (bytes: number) => (bytes / 1024).toFixed(1);
const settle = () => new Promise((resolve) => setTimeout(resolve, 2000));
const connect = () =>
  new pg.Client({
    user: 'bench',
    database: 'bench',
    stream: () => new Socket({ url: bridge.url, WebSocket: WebSocket as never }) as never,
  });

const clients: pg.Client[] = [];
try {
  // One session first: the isolate, its modules and the first connection's costs are not per session.
  const first = connect();
  await first.connect();
  await first.query('SELECT 1');
  await first.end();
  await settle();
  const base = residentBytes(pid);

  const started = performance.now();
  for (let i = 0; i < SESSIONS; i++) clients.push(connect());
  await Promise.all(clients.map((client) => client.connect()));
  const openMs = performance.now() - started;
  await settle();
  const idle = residentBytes(pid);

  let peak = idle;
  const sampler = setInterval(() => (peak = Math.max(peak, residentBytes(pid))), 100);
  const streamStarted = performance.now();
  const results = await Promise.all(clients.map((client) => client.query({ text: 'STREAM', rowMode: 'array' })));
  const streamMs = performance.now() - streamStarted;
  clearInterval(sampler);
  const rows = results.reduce((n, r) => n + r.rows.length, 0);
  if (rows !== SESSIONS * Math.floor(STREAM_BYTES / ROW_BYTES)) throw new Error(`lost rows: ${rows}`);

  console.log(`${SESSIONS} concurrent sessions through one local workerd (pg, flow control, startup in the upgrade):`);
  console.log(`  open all ${SESSIONS}         ${openMs.toFixed(0)} ms  (${(openMs / SESSIONS).toFixed(2)} ms each)`);
  console.log(`  workerd before           ${mib(base)} MiB`);
  console.log(`  all idle                 ${mib(idle)} MiB  → ${kib((idle - base) / SESSIONS)} KiB per idle session`);
  console.log(
    `  all streaming (peak)     ${mib(peak)} MiB  → ${kib((peak - base) / SESSIONS)} KiB per streaming session` +
      `  (${mib(STREAM_BYTES)} MiB each, ${(streamMs / 1000).toFixed(1)} s)`,
  );
  console.log(`sessions_open_ms=${openMs.toFixed(0)}`);
  console.log(`idle_session_kib=${kib((idle - base) / SESSIONS)}`);
  console.log(`streaming_session_kib=${kib((peak - base) / SESSIONS)}`);
} finally {
  await Promise.allSettled(clients.map((client) => client.end()));
  await bridge.stop();
  await server.stop();
}

/** Just enough of PostgreSQL: AuthenticationOk at once, `SELECT 1`, and a STREAM_BYTES result for anything else. */
async function standInPostgres() {
  const sockets = new Set<TcpSocket>();
  const message = (type: string, body: Buffer) => {
    const header = Buffer.alloc(5);
    header.write(type, 0, 'latin1');
    header.writeUInt32BE(body.length + 4, 1);
    return Buffer.concat([header, body]);
  };
  const int32 = (n: number) => Buffer.from([n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255]);
  const cstring = (s: string) => Buffer.from(`${s}\0`);
  const READY = message('Z', Buffer.from('I'));
  const LOGGED_IN = Buffer.concat([
    message('R', int32(0)),
    message('S', Buffer.concat([cstring('server_version'), cstring('18.4')])),
    message('S', Buffer.concat([cstring('client_encoding'), cstring('UTF8')])),
    message('K', Buffer.concat([int32(4242), int32(1)])),
    READY,
  ]);
  const column = (name: string) =>
    Buffer.concat([
      cstring(name),
      int32(0),
      Buffer.from([0, 0]),
      int32(25),
      Buffer.from([255, 255]),
      int32(-1),
      Buffer.from([0, 0]),
    ]);
  const rowDescription = message('T', Buffer.concat([Buffer.from([0, 1]), column('v')]));
  const value = Buffer.alloc(ROW_BYTES - 11, 'x');
  const dataRow = message('D', Buffer.concat([Buffer.from([0, 1]), int32(value.length), value]));
  const rowsPerBatch = 64;
  const batch = Buffer.concat(Array.from({ length: rowsPerBatch }, () => dataRow));
  const select1 = Buffer.concat([
    rowDescription,
    message('D', Buffer.concat([Buffer.from([0, 1]), int32(1), Buffer.from('1')])),
    message('C', cstring('SELECT 1')),
    READY,
  ]);

  const stream = async (socket: TcpSocket) => {
    const rows = Math.floor(STREAM_BYTES / ROW_BYTES);
    socket.write(rowDescription);
    for (let sent = 0; sent < rows; sent += rowsPerBatch) {
      const count = Math.min(rowsPerBatch, rows - sent);
      const chunk = count === rowsPerBatch ? batch : batch.subarray(0, count * dataRow.length);
      if (!socket.write(chunk)) await new Promise((resolve) => socket.once('drain', resolve));
      if (socket.destroyed) return;
    }
    socket.write(Buffer.concat([message('C', cstring(`SELECT ${rows}`)), READY]));
  };

  const tcp: Server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    let buffer = Buffer.alloc(0);
    let started = false;
    socket.on('data', (chunk: Buffer) => {
      buffer = Buffer.concat([buffer, chunk]);
      for (;;) {
        if (!started) {
          if (buffer.length < 4 || buffer.length < buffer.readUInt32BE(0)) return;
          buffer = buffer.subarray(buffer.readUInt32BE(0));
          started = true;
          socket.write(LOGGED_IN);
          continue;
        }
        if (buffer.length < 5 || buffer.length < 1 + buffer.readUInt32BE(1)) return;
        const type = String.fromCharCode(buffer[0]!);
        const body = buffer.subarray(5, 1 + buffer.readUInt32BE(1));
        buffer = buffer.subarray(1 + buffer.readUInt32BE(1));
        if (type === 'X') return void socket.end();
        if (type !== 'Q') continue;
        if (body.toString('latin1').startsWith('SELECT 1')) socket.write(select1);
        else void stream(socket);
      }
    });
  });
  await new Promise<void>((resolve) => tcp.listen(0, '127.0.0.1', resolve));
  return {
    port: (tcp.address() as { port: number }).port,
    stop: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        tcp.close(() => resolve());
      }),
  };
}
