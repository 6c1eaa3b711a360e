/**
 * A watch: the current value plus change notification (linkerd's watch, grpc-js's picker).
 * Readers take the current value and never see a half-updated one; writers replace it whole.
 */

/** An observable value. */
export class Watch<T> {
  private value: T;
  private readonly listeners = new Set<(v: T) => void>();

  constructor(
    initial: T,
    private readonly onError: (e: unknown) => void = (e) =>
      process.stderr.write(`weft: a state subscriber failed: ${(e as Error)?.stack ?? String(e)}\n`),
  ) {
    this.value = initial;
  }

  /** The current value. */
  get(): T {
    return this.value;
  }

  /** Replaces the value and tells every subscriber (a throwing subscriber does not stop the others). */
  set(v: T): void {
    if (v === this.value) return;
    this.value = v;
    for (const l of [...this.listeners]) {
      try {
        l(v);
      } catch (e) {
        this.onError(e);
      }
    }
  }

  /** Calls fn on every new value; returns the unsubscribe function. */
  subscribe(fn: (v: T) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  /** Resolves with the first value (the current one included) that satisfies the predicate. */
  when(predicate: (v: T) => boolean, timeoutMs?: number): Promise<T> {
    if (predicate(this.value)) return Promise.resolve(this.value);
    return new Promise((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const off = this.subscribe((v) => {
        if (!predicate(v)) return;
        off();
        if (timer) clearTimeout(timer);
        resolve(v);
      });
      if (timeoutMs !== undefined) {
        timer = setTimeout(() => {
          off();
          reject(new Error(`no matching value within ${timeoutMs} ms`));
        }, timeoutMs);
      }
    });
  }
}
