/** Waiting that a cancellation cuts short. */

/** What sleep listens to: AbortSignal, or any object of its shape. */
export interface SleepSignal {
  readonly aborted: boolean;
  addEventListener(type: "abort", fn: () => void, opts?: { once?: boolean }): void;
  removeEventListener(type: "abort", fn: () => void): void;
}

/** Resolves after ms, or at once when the signal aborts. */
export function sleep(ms: number, signal: SleepSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal.removeEventListener("abort", done);
      resolve();
    }
    signal.addEventListener("abort", done, { once: true });
  });
}
