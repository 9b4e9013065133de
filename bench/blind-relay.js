import { connect } from 'cloudflare:sockets';

const MESSAGE_BYTES = 64 * 1024;

/**
 * The floor the benchmark measures the bridge against: a Worker that pipes bytes WebSocket ↔ TCP
 * to PG_HOST:PG_PORT and checks nothing — no framing, no flow control, no limits — gathering
 * PostgreSQL's bytes as the bridge does (BYOB reads of 4 KiB, or 64 KiB while the last read
 * brought at least 4 KiB, copied once into a 64 KiB message, sent when full or when an event-loop
 * turn passes with no read done). Having no framing, it cannot send at once after a ReadyForQuery.
 */
/** @param {{ PG_HOST: string, PG_PORT?: string }} env */
export function blindRelay(env) {
  const [client, server] = Object.values(new WebSocketPair());
  server.binaryType = 'arraybuffer';
  server.accept();
  const socket = connect({ hostname: env.PG_HOST, port: Number(env.PG_PORT ?? 5432) });
  const writer = socket.writable.getWriter();
  server.addEventListener('message', ({ data }) => void writer.write(new Uint8Array(data)).catch(() => {}));
  server.addEventListener('close', () => void socket.close().catch(() => {}));
  void pump(socket.readable.getReader({ mode: 'byob' }), server).finally(() => server.close(1000));
  return new Response(null, { status: 101, webSocket: client });
}

async function pump(reader, ws) {
  let message = new Uint8Array(MESSAGE_BYTES);
  let filled = 0;
  let [small, large, streaming] = [new Uint8Array(4096), new Uint8Array(MESSAGE_BYTES), false];
  let [waiting, completed, armed] = [false, 0, false];
  const flush = () => {
    if (filled > 0) ws.send(message.subarray(0, filled));
    [message, filled] = [new Uint8Array(MESSAGE_BYTES), 0];
  };
  const look = (seen) => {
    armed = false;
    if (filled > 0 && waiting && completed === seen) flush();
    else if (filled > 0) arm();
  };
  const arm = () => {
    armed = true;
    const seen = completed;
    setTimeout(() => look(seen), 0);
  };
  for (;;) {
    const offered = streaming ? large : small;
    const next = reader.read(offered);
    waiting = true;
    if (filled > 0 && !armed) arm();
    const { value, done } = await next;
    [waiting, completed] = [false, completed + 1];
    if (done) break;
    for (let pos = 0; pos < value.length;) {
      const take = Math.min(value.length - pos, MESSAGE_BYTES - filled);
      message.set(value.subarray(pos, pos + take), filled);
      [filled, pos] = [filled + take, pos + take];
      if (filled === MESSAGE_BYTES) flush();
    }
    if (streaming) large = new Uint8Array(value.buffer);
    else small = new Uint8Array(value.buffer);
    streaming = value.length >= 4096;
  }
  flush();
}
