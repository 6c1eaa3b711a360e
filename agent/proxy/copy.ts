/**
 * Splicing two byte streams both ways with backpressure (a full writer pauses the reader until
 * 'drain') and half-close (a FIN one way ends that direction only; the other keeps flowing until
 * it ends too). An abort on either side (reset, error) aborts the other, so a peer sees a reset
 * as a reset, never a clean FIN.
 *
 * Not stream.pipe: pipe() hangs nine closures and two state objects on each direction, which for
 * thousands of idle tunnelled connections is most of their memory. Here a direction costs three.
 * 'end' and 'close' are emitted at most once, so they get plain listeners: once() would add a
 * wrapper object and a bound function per listener to every live connection.
 */
import { Socket } from "node:net";
import type { Duplex, Writable } from "node:stream";
import { abortSocket } from "./abort.js";

/** How a splice ended. */
export interface SpliceResult {
  /** Both directions ended cleanly. */
  clean: boolean;
  /** First error seen, if any. */
  error?: Error;
}

/** True when a stream finished both ways without being destroyed early. */
export function completed(s: Duplex): boolean {
  return s.readableEnded && s.writableFinished;
}

/**
 * A chunk this large is a whole HTTP/2 DATA frame at the default frame size (or a full socket
 * read): more are likely in the same turn of the event loop.
 */
export const COALESCE_FROM = 16 * 1024;
/** Bytes held for one coalesced write before the writer asks its reader to wait for 'drain'. */
const COALESCE_MAX = 256 * 1024;

/**
 * Writes to one writer so that a run of full frames (a bulk transfer) goes out as one write at
 * the end of this turn of the event loop, instead of one syscall per 16 KiB frame. A smaller
 * chunk (a request, the tail of a response) is written at once, so no request waits on it.
 * Made on a connection's first full frame: most connections never need one.
 */
export class Coalescer {
  private corked = false;
  private readonly uncork = () => {
    this.corked = false;
    this.to.uncork();
  };

  constructor(private readonly to: Writable) {}

  /** Writes a chunk; false when the caller should wait for the writer's 'drain'. */
  write(chunk: Buffer): boolean {
    if (!this.corked && chunk.length >= COALESCE_FROM) {
      this.corked = true;
      this.to.cork();
      setImmediate(this.uncork);
    }
    // While corked, write() says false past the writer's small high-water mark although the
    // chunks are only held until the end of this turn: the caller waits only past COALESCE_MAX
    // (then write() has said false, so 'drain' comes).
    return this.to.write(chunk) || (this.corked && this.to.writableLength < COALESCE_MAX);
  }
}

/** Copies from → to; ends `to` when `from` ends. */
function forward(from: Duplex, to: Duplex): void {
  const resume = () => from.resume();
  let co: Coalescer | undefined;
  from.on("data", (chunk: Buffer) => {
    if (!co && chunk.length >= COALESCE_FROM) co = new Coalescer(to);
    if (!(co ? co.write(chunk) : to.write(chunk))) {
      from.pause();
      to.once("drain", resume);
    }
  });
  from.on("end", () => {
    if (!to.destroyed) to.end();
  });
  // A sniffed socket was left explicitly paused (its first bytes put back): a data listener
  // alone would not start it.
  from.resume();
}

/** Connects a and b both ways; calls done once both are closed. */
export function spliceWith(a: Duplex, b: Duplex, done: (r: SpliceResult) => void): void {
  let error: Error | undefined;
  let closed = 0;
  const onError = (e: Error) => {
    error ??= e;
  };
  const onClose = (self: Duplex, other: Duplex) => () => {
    if (!completed(self) && !other.destroyed) {
      // Abnormal end: propagate as an abort (RST), not as a FIN the peer would trust. A TCP
      // socket must be reset (its destroy() closes with a FIN); a stream's destroy(error) is
      // one already (HTTP/2: RST_STREAM).
      if (other instanceof Socket) abortSocket(other);
      else other.destroy(error);
    }
    if (++closed === 2) done({ clean: !error && completed(a) && completed(b), ...(error ? { error } : {}) });
  };
  a.on("error", onError);
  b.on("error", onError);
  a.on("close", onClose(a, b));
  b.on("close", onClose(b, a));
  forward(a, b);
  forward(b, a);
}
