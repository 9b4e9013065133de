import { type ClientChannel, giveBack, RELAY_BUFFER_BYTES, takeBuffer } from './client-channel.js';

/**
 * What a read offers while PostgreSQL's bytes trickle in, and what an idle session's pending read
 * holds. (workerd before 1.20261117 returned at most 4 KiB a read, whatever was offered.)
 */
export const READ_BYTES = 4096;
/**
 * What a read offers while a result streams: workerd 1.20261117 hands over all that is waiting,
 * up to the buffer, so a result arrives in far fewer reads (and awaits) than at 4 KiB — which
 * doubled the bridge's throughput on 1 KB rows. A message's worth: a read that fills it is sent
 * as it is.
 */
export const STREAMING_READ_BYTES = RELAY_BUFFER_BYTES;

/** What the pump asks of its session. */
export interface RelayHooks {
  /** How many bytes the window and the isolate's budget let it read from PostgreSQL now (0: wait). */
  readable(): number;
  /** Resolves when that may have changed: an echo came, the budget freed up, or the session closed. */
  roomChanged(): Promise<void>;
  isClosed(): boolean;
  /** Whether the isolate is over its budget: a session waiting then must come down to its share. */
  overBudget(): boolean;
  /**
   * Server bytes read, added to the message gathered for the client as it is to get them; true
   * when they end right after a message the client must get at once. The relay reuses the
   * chunk's buffer after this returns, unless `given`: then it is the client channel's to keep
   * (ClientChannel.add).
   */
  take(chunk: Uint8Array, given: boolean): boolean;
}

/**
 * PostgreSQL → client. TCP reads come in chunks of what is waiting, often small; sending each as
 * its own WebSocket message would cost a message per read, so chunks are gathered into one message
 * until a message the client must act on ends them (ReadyForQuery, an auth request, …),
 * RELAY_BUFFER_BYTES are gathered, or the reads run dry: an event-loop turn passes in which no
 * read completed. Every read lands in one of two buffers (a BYOB read): the large one while a
 * result streams (the last read brought at least READ_BYTES, or all it asked for, and no message
 * the client must act on), else the small one. A large read that comes back full while nothing is
 * gathered is a message already and goes out as it is (the next large read takes a spare buffer);
 * any other read is copied once, into the message, and while one is gathered a large read asks
 * for no more than it lacks, so the next message starts empty again. Reads never ask for more than
 * the window has room for; while the client has not proven it received what it was sent (a full
 * window), the pump does not read: TCP then pushes back on PostgreSQL. Resolves when PostgreSQL
 * ends the stream; rejects when reading fails.
 */
export async function relayServerToClient(
  postgres: { readInto(view: Uint8Array): Promise<ReadableStreamReadResult<Uint8Array>> },
  channel: ClientChannel,
  hooks: RelayHooks,
): Promise<void> {
  const dry = new DryReads(channel, hooks);
  let small: Uint8Array = new Uint8Array(READ_BYTES);
  let large: Uint8Array | null = null;
  let streaming = false;
  for (;;) {
    let room: number;
    while ((room = hooks.readable()) === 0) {
      channel.flush();
      channel.markBeforeWaiting(hooks.overBudget());
      await hooks.roomChanged();
      if (hooks.isClosed()) return;
      channel.resumed();
    }
    const buffer: Uint8Array = streaming ? (large ??= takeBuffer()) : small;
    // Never more than the window has room for: what the bridge holds stays within it.
    const limit = streaming && !channel.isEmpty ? Math.min(room, channel.messageRoom) : room;
    const offered: Uint8Array = limit < buffer.length ? buffer.subarray(0, limit) : buffer;
    const asked = offered.length;
    const read = postgres.readInto(offered);
    dry.reading();
    const result = await read;
    dry.read();
    if (result.done || hooks.isClosed()) break;
    // Full only if offered whole, which it is only while nothing is gathered.
    const given = streaming && result.value.length === STREAMING_READ_BYTES;
    const urgent = hooks.take(result.value, given);
    // The stream hands the buffer back in the result: the next read into it reuses it, unless it
    // went out as a message. After a ReadyForQuery, or a read that brought little, the session is
    // likely to wait: the small buffer waits with it, and the large one goes.
    const returned = given ? null : new Uint8Array(result.value.buffer);
    if (streaming) large = returned;
    else small = returned!;
    // A read cut short by the window or the message's end brought all it asked for: not little.
    streaming = !urgent && (result.value.length >= READ_BYTES || result.value.length === asked);
    if (!streaming && large) {
      giveBack(large);
      large = null;
    }
    if (hooks.isClosed()) break;
    if (urgent) channel.flushAtRest();
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
