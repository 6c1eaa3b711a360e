/**
 * A watch: the current value plus change notification (linkerd's watch, grpc-js's picker).
 * Readers take the current value and never see a half-updated one; the owner replaces it whole.
 * Reading and writing are split: `createWatch` hands the setter only to its caller, and what the
 * owner passes around is a `ReadonlyWatch` with no way to change the value — a second writer
 * does not type-check, and at run time there is no `set` to call.
 */
import { errorStack } from "../../common/errors.js";

/** The reading side of a watched value. */
export interface ReadonlyWatch<T> {
  /** The current value. */
  get(): T;
  /** Calls fn on every new value; returns the unsubscribe function. */
  subscribe(fn: (v: T) => void): () => void;
  /** Resolves with the first value (the current one included) that satisfies the predicate. */
  when(predicate: (v: T) => boolean, timeoutMs?: number): Promise<T>;
}

/** Replaces the value and tells every subscriber (a throwing subscriber does not stop the others). */
export type WatchSetter<T> = (v: T) => void;

/** A watched value: the read-only view to hand out and the setter for the one owner to keep. */
export function createWatch<T>(
  initial: T,
  onError: (e: unknown) => void = (e) => process.stderr.write(`weft: a state subscriber failed: ${errorStack(e)}\n`),
): { watch: ReadonlyWatch<T>; set: WatchSetter<T> } {
  let value = initial;
  const listeners = new Set<(v: T) => void>();
  const subscribe = (fn: (v: T) => void) => {
    listeners.add(fn);
    return () => {
      listeners.delete(fn);
    };
  };
  const watch: ReadonlyWatch<T> = Object.freeze({
    get: () => value,
    subscribe,
    when(predicate: (v: T) => boolean, timeoutMs?: number): Promise<T> {
      if (predicate(value)) return Promise.resolve(value);
      return new Promise<T>((resolve, reject) => {
        let timer: NodeJS.Timeout | undefined;
        const off = subscribe((v) => {
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
    },
  });
  const set = (v: T) => {
    if (v === value) return;
    value = v;
    for (const l of [...listeners]) {
      try {
        l(v);
      } catch (e) {
        onError(e);
      }
    }
  };
  return { watch, set };
}
