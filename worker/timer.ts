/** A restartable one-shot timer; with a limit of 0 (off) it never fires. */
export interface Timer {
  /** Starts the timer, or starts it over when it is running. */
  start(): void;
  cancel(): void;
}

/** setTimeout takes at most 2^31 − 1 ms; a longer limit is waited for in steps. */
const MAX_TIMEOUT_MS = 2 ** 31 - 1;

export function timer(ms: number, fire: () => void): Timer {
  let handle: ReturnType<typeof setTimeout> | null = null;
  let deadline = 0;
  const cancel = () => {
    if (handle !== null) clearTimeout(handle);
    handle = null;
  };
  const wait = () => {
    const left = deadline - Date.now();
    handle = setTimeout(
      () => {
        handle = null;
        if (Date.now() >= deadline) fire();
        else wait();
      },
      Math.min(Math.max(left, 0), MAX_TIMEOUT_MS),
    );
  };
  return {
    start() {
      cancel();
      if (ms <= 0) return;
      deadline = Date.now() + ms;
      wait();
    },
    cancel,
  };
}
