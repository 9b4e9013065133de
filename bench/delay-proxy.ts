import { connect, createServer, type Server, type Socket } from 'node:net';

/**
 * A TCP proxy on loopback that holds every chunk for `delayMs` in each direction: a link with a
 * round trip of 2 × delayMs, in user space (this kernel has no netem). The client's first bytes
 * also wait for the round trip TCP's handshake would have cost, since its local connect() returns
 * at once. Order is kept: each direction is one queue, drained by one timer.
 */
export async function startDelayProxy(target: { host: string; port: number }, delayMs: number) {
  const sockets = new Set<Socket>();
  const server: Server = createServer((client) => {
    const handshakeDone = performance.now() + 2 * delayMs;
    const upstream = connect(target.port, target.host);
    sockets.add(client).add(upstream);
    client.setNoDelay(true);
    upstream.setNoDelay(true);
    delayed(client, upstream, (now) => Math.max(now, handshakeDone) + delayMs);
    delayed(upstream, client, (now) => now + delayMs);
    for (const [a, b] of [
      [client, upstream],
      [upstream, client],
    ] as const) {
      a.on('error', () => b.destroy());
      a.on('close', () => {
        sockets.delete(a);
        setTimeout(() => b.destroy(), delayMs + 5);
      });
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  return {
    port,
    stop: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

/** Passes `from`'s bytes and end to `to`, each at the time `due` gives for when it was read. */
function delayed(from: Socket, to: Socket, due: (now: number) => number): void {
  const queue: Array<{ at: number; chunk: Buffer | null }> = [];
  let timer: ReturnType<typeof setTimeout> | null = null;
  const drain = () => {
    timer = null;
    const now = performance.now();
    while (queue.length > 0 && queue[0]!.at <= now + 0.5) {
      const { chunk } = queue.shift()!;
      if (chunk === null) to.end();
      else to.write(chunk);
    }
    if (queue.length > 0) timer = setTimeout(drain, queue[0]!.at - now);
  };
  const push = (chunk: Buffer | null) => {
    queue.push({ at: due(performance.now()), chunk });
    if (timer === null) timer = setTimeout(drain, queue[0]!.at - performance.now());
  };
  from.on('data', (chunk: Buffer) => push(chunk));
  from.on('end', () => push(null));
}
