import type { ClientChannel } from './client-channel.js';

/** workerd's TCP reads return at most 4 KiB, whatever the buffer offered. */
export const READ_BYTES = 4096;

/** What the pump asks of its session. */
export interface RelayHooks {
  /** Whether the window and the isolate's budget let it read more from PostgreSQL. */
  mayRead(): boolean;
  /** Resolves when that may have changed: an echo came, the budget freed up, or the session closed. */
  roomChanged(): Promise<void>;
  isClosed(): boolean;
  /**
   * Server bytes read, added to the message gathered for the client as it is to get them (the
   * chunk is reused after this returns); true when they end right after a message the client
   * must get at once.
   */
  take(chunk: Uint8Array): boolean;
}

/**
 * PostgreSQL → client. TCP reads come in chunks of at most 4 KiB; sending each as its own
 * WebSocket message would cost a message per 4 KiB, so chunks are gathered into one message
 * until a message the client must act on ends them (ReadyForQuery, an auth request, …),
 * RELAY_BUFFER_BYTES are gathered, or the reads run dry: an event-loop turn passes in which no
 * read completed. Every read lands in the same buffer (a BYOB read, no allocation) and is copied
 * once, into the message. While the client has not proven it received what it was sent (a full
 * window), the pump does not read: TCP then pushes back on PostgreSQL. Resolves when PostgreSQL
 * ends the stream; rejects when reading fails.
 */
export async function relayServerToClient(
  postgres: { readInto(view: Uint8Array): Promise<ReadableStreamReadResult<Uint8Array>> },
  channel: ClientChannel,
  hooks: RelayHooks,
): Promise<void> {
  const dry = new DryReads(channel, hooks);
  let buffer: Uint8Array = new Uint8Array(READ_BYTES);
  for (;;) {
    while (!hooks.mayRead()) {
      channel.flush();
      channel.markAll();
      await hooks.roomChanged();
      if (hooks.isClosed()) return;
    }
    const read = postgres.readInto(buffer);
    dry.reading();
    const result = await read;
    dry.read();
    if (result.done || hooks.isClosed()) break;
    const urgent = hooks.take(result.value);
    // The stream hands the buffer back in the result: the next read goes into it again.
    buffer = new Uint8Array(result.value.buffer);
    if (hooks.isClosed()) break;
    if (urgent) channel.flush();
  }
  channel.flush();
}

/**
 * Flushes what was gathered once the reads run dry, with one timer per event-loop turn instead
 * of one per read (and none while nothing is gathered): the timer looks whether any read
 * completed since it was set, and flushes when none did while one was waiting. It is never
 * cleared; one that fires with nothing to do just ends.
 */
class DryReads {
  private completed = 0;
  private waiting = false;
  private armed = false;
  private seen = 0;

  constructor(
    private readonly channel: ClientChannel,
    private readonly hooks: Pick<RelayHooks, 'isClosed'>,
  ) {}

  /** A read was started. */
  reading(): void {
    this.waiting = true;
    if (!this.armed && !this.channel.isEmpty) this.arm();
  }

  /** The read completed. */
  read(): void {
    this.waiting = false;
    this.completed += 1;
  }

  private arm(): void {
    this.armed = true;
    this.seen = this.completed;
    setTimeout(() => this.look(), 0);
  }

  private look(): void {
    this.armed = false;
    if (this.channel.isEmpty || this.hooks.isClosed()) return;
    if (this.waiting && this.completed === this.seen) this.channel.flush();
    else this.arm();
  }
}
