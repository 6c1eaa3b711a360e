/**
 * Splicing two byte streams both ways with backpressure (pipe pauses the reader when the writer's
 * buffer is full) and half-close (a FIN one way ends that direction only; the other keeps flowing
 * until it ends too). An abort on either side (reset, error) aborts the other, so a peer sees a
 * reset as a reset, never a clean FIN.
 */
import type { Duplex } from "node:stream";

/** How a splice ended. */
export interface SpliceResult {
  /** Both directions ended cleanly. */
  clean: boolean;
  /** First error seen, if any. */
  error?: Error;
}

/** True when a stream finished both ways without being destroyed early. */
function completed(s: Duplex): boolean {
  return s.readableEnded && s.writableFinished;
}

/** Connects a and b both ways; resolves when both are closed. */
export function splice(a: Duplex, b: Duplex): Promise<SpliceResult> {
  return new Promise((resolve) => {
    let error: Error | undefined;
    let closed = 0;
    const onError = (e: Error) => {
      error ??= e;
    };
    a.on("error", onError);
    b.on("error", onError);
    const onClose = (self: Duplex, other: Duplex) => () => {
      if (!completed(self) && !other.destroyed) {
        // Abnormal end: propagate as an abort (RST), not as a FIN the peer would trust.
        other.destroy(error);
      }
      if (++closed === 2) resolve({ clean: !error && completed(a) && completed(b), ...(error ? { error } : {}) });
    };
    a.once("close", onClose(a, b));
    b.once("close", onClose(b, a));
    a.pipe(b);
    b.pipe(a);
  });
}
