/** Pieces smaller than this are copied together rather than written (or kept) one by one. */
const GATHER_BELOW_BYTES = 1024;
/** What small pieces are copied into. */
const GATHER_BLOCK_BYTES = 16 * 1024;
/** Writes handed to the TCP writer and not yet taken: enough to keep it busy, few enough to count. */
const MAX_WRITES_IN_FLIGHT = 8;

/** The part of PostgreSQL's TCP writer this needs. */
export interface ServerWriter {
  write(bytes: Uint8Array): Promise<void>;
}

/**
 * Client bytes on their way to PostgreSQL. A few writes are in flight at a time; what arrives
 * meanwhile waits here in order, small pieces copied together. The window counts bytes, and
 * each write costs the Worker more than its bytes (a promise, a view, the writer's own entry):
 * one per message would let a client sending a million one-byte messages toward a server that has
 * stopped reading leave a million writes queued while the window counted a million bytes.
 */
export class ServerWrites {
  private writer: ServerWriter | null = null;
  private readonly waiting: Uint8Array[] = [];
  /** The last small pieces, copied together; goes to `waiting` when full or when written. */
  private gather: Uint8Array | null = null;
  private gathered = 0;
  private inFlight = 0;
  private pendingBytes = 0;

  constructor(
    /** `bytes` more were taken by the TCP writer. */
    private readonly written: (bytes: number) => void,
    private readonly failed: (error: unknown) => void,
  ) {}

  /** Bytes accepted and not yet taken by the TCP writer. */
  get pending(): number {
    return this.pendingBytes;
  }

  /** Bytes to write after all before them: kept as they are unless small (copied), so never changed after. */
  add(bytes: Uint8Array): void {
    if (bytes.length === 0) return;
    this.pendingBytes += bytes.length;
    if (this.writer && this.inFlight < MAX_WRITES_IN_FLIGHT && this.isEmpty) {
      this.send(bytes);
      return;
    }
    if (bytes.length >= GATHER_BELOW_BYTES) {
      this.endGather();
      this.waiting.push(bytes);
      return;
    }
    if (this.gather && this.gathered + bytes.length > this.gather.length) this.endGather();
    this.gather ??= new Uint8Array(GATHER_BLOCK_BYTES);
    this.gather.set(bytes, this.gathered);
    this.gathered += bytes.length;
  }

  /** PostgreSQL's connection is ready: what waited goes out, in order, and what comes later follows. */
  start(writer: ServerWriter): void {
    this.writer = writer;
    this.pump();
  }

  /**
   * At the end: everything still waiting goes to the writer at once, so that what the caller
   * writes next (a Terminate) follows it.
   */
  flushAll(): void {
    this.pump(Infinity);
  }

  private get isEmpty(): boolean {
    return this.waiting.length === 0 && this.gathered === 0;
  }

  private pump(maxInFlight = MAX_WRITES_IN_FLIGHT): void {
    while (this.writer && this.inFlight < maxInFlight && !this.isEmpty) {
      if (this.waiting.length === 0) this.endGather();
      this.send(this.waiting.shift()!);
    }
  }

  private endGather(): void {
    if (this.gather && this.gathered > 0) this.waiting.push(this.gather.subarray(0, this.gathered));
    this.gather = null;
    this.gathered = 0;
  }

  private send(bytes: Uint8Array): void {
    this.inFlight += 1;
    this.writer!.write(bytes).then(
      () => {
        this.inFlight -= 1;
        this.pendingBytes -= bytes.length;
        this.written(bytes.length);
        this.pump();
      },
      (error: unknown) => this.failed(error),
    );
  }
}
