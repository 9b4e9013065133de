/** A restartable one-shot timer; with a limit of 0 (off) it never fires. */
export interface Timer {
  /** Starts the timer, or starts it over when it is running. */
  start(): void;
  /** Stops it from firing; cheap enough for every message. */
  cancel(): void;
  /** Stops it and lets go of the platform timer: for a session that ends. */
  dispose(): void;
  /** Whether it will fire: started, and neither cancelled nor fired since. */
  readonly running: boolean;
}

/** setTimeout takes at most 2^31 − 1 ms; a longer limit is waited for in steps. */
const MAX_TIMEOUT_MS = 2 ** 31 - 1;

/**
 * Restarted and cancelled on hot paths (the bridge's idle limits, once per statement; the client
 * socket's idle timeout, once per chunk), so neither
 * touches the platform's timer: start() moves a deadline, cancel() clears it, and the one pending
 * setTimeout re-arms itself for the deadline when it fires early. Since every start() of a timer
 * sets a deadline later than any before it, a pending setTimeout never fires too late.
 */
export function timer(ms: number, fire: () => void, options: { unref?: boolean } = {}): Timer {
  let deadline: number | null = null;
  let pending: ReturnType<typeof setTimeout> | null = null;
  const arm = (at: number) => {
    pending = setTimeout(onTimeout, Math.min(Math.max(at - Date.now(), 0), MAX_TIMEOUT_MS));
    // Node: the timer alone does not keep the process running.
    if (options.unref) (pending as { unref?: () => void }).unref?.();
  };
  const onTimeout = () => {
    pending = null;
    if (deadline === null) return;
    if (Date.now() < deadline) return arm(deadline);
    deadline = null;
    fire();
  };
  return {
    start() {
      if (ms <= 0) return;
      deadline = Date.now() + ms;
      if (pending === null) arm(deadline);
    },
    cancel() {
      deadline = null;
    },
    dispose() {
      deadline = null;
      if (pending !== null) clearTimeout(pending);
      pending = null;
    },
    get running() {
      return deadline !== null;
    },
  };
}
