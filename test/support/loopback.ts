import type { Server, Socket } from 'node:net';

/** Starts `server` on an ephemeral loopback port; `stop` destroys `sockets` and closes it. */
export async function listenOnLoopback(server: Server, sockets: Set<Socket>) {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as { port: number }).port,
    stop: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}
