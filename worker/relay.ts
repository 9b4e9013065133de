import { RELAY_BUFFER_BYTES, type ClientChannel } from './client-channel.js';

/** What the pump asks of its session. */
export interface RelayHooks {
  /** Whether the window and the isolate's budget let it read more from PostgreSQL. */
  mayRead(): boolean;
  /** Resolves when that may have changed: an echo came, the budget freed up, or the session closed. */
  roomChanged(): Promise<void>;
  isClosed(): boolean;
  /** Server bytes read, as the client is to get them: views of the chunk, or a message rewritten. */
  pass(chunk: Uint8Array): Uint8Array[];
  /** Server bytes about to be sent; true when they end right after a message the client must get at once. */
  scan(bytes: Uint8Array): boolean;
}

/**
 * PostgreSQL → client. TCP reads come in chunks of at most 4 KiB; sending each as its own
 * WebSocket message would cost a message per 4 KiB, so chunks are gathered into one message
 * until a message the client must act on ends them (ReadyForQuery, an auth request, …),
 * RELAY_BUFFER_BYTES are gathered, or the next read does not complete within one event-loop turn.
 * While the client has not proven it received what it was sent (a full window), the pump does
 * not read: TCP then pushes back on PostgreSQL. Resolves when PostgreSQL ends the stream; rejects
 * when reading fails.
 */
export async function relayServerToClient(
  reader: ReadableStreamDefaultReader<Uint8Array>,
  channel: ClientChannel,
  hooks: RelayHooks,
): Promise<void> {
  for (;;) {
    while (!hooks.mayRead()) {
      channel.flush();
      channel.markAll();
      await hooks.roomChanged();
      if (hooks.isClosed()) return;
    }
    const read = reader.read();
    let result = channel.isEmpty ? await read : await raceNextTurn(read);
    if (result === NEXT_TURN) {
      channel.flush();
      result = await read;
    }
    if (result.done || hooks.isClosed()) break;
    let urgent = false;
    for (const bytes of hooks.pass(result.value)) {
      urgent = hooks.scan(bytes);
      channel.add(bytes);
    }
    if (hooks.isClosed()) break;
    if (urgent || channel.buffered >= RELAY_BUFFER_BYTES) channel.flush();
  }
  channel.flush();
}

const NEXT_TURN = Symbol('next turn');

/** Resolves with the read if it completes before the event loop turns once more. */
function raceNextTurn<T>(read: Promise<T>): Promise<T | typeof NEXT_TURN> {
  let timer: ReturnType<typeof setTimeout> | null = null;
  const turn = new Promise<typeof NEXT_TURN>((resolve) => {
    timer = setTimeout(() => resolve(NEXT_TURN), 0);
  });
  return Promise.race([read, turn]).finally(() => {
    if (timer !== null) clearTimeout(timer);
  });
}
