/**
 * A request body that can be sent more than once: chunks stream to the current attempt as they
 * arrive and are kept (up to a limit) so a retry or a mirror can replay them. Past the limit the
 * body streams on but can no longer be replayed, and retries stop (as Envoy's buffer limit does).
 *
 * Invariants: at most one sink at a time; a sink receives every chunk exactly once, in order,
 * then end() once the source has ended; the source is paused while no sink takes data or the
 * sink pushes back.
 */
import type { Readable } from "node:stream";

/** Where a request body is written: a Writable, or the HTTP/1.1 client's own request writer. */
export interface BodySink {
  /** False: wait for "drain". */
  write(chunk: Buffer): boolean;
  end(chunk?: Buffer): void;
  once(event: "drain", fn: () => void): unknown;
}

/** Streams a body into a sink with its backpressure, ending the sink when the body ends. */
export function pipeBody(source: Readable, sink: BodySink): void {
  // A client that goes away mid-body destroys its body with an error: without a listener that
  // error would end the process. Whoever watches the client (onGone) aborts the exchange.
  source.on("error", () => undefined);
  source.on("data", (c: Buffer) => {
    if (!sink.write(c)) {
      source.pause();
      sink.once("drain", () => source.resume());
    }
  });
  source.once("end", () => sink.end());
}

/** Default bytes kept for replay (Envoy's per-request retry buffer is of this order). */
export const REPLAY_LIMIT = 64 * 1024;

/** A replayable request body. */
export class ReplayableBody {
  private readonly chunks: Buffer[] = [];
  private kept = 0;
  private overflowed = false;
  private ended = false;
  private failed?: Error;
  private sink?: BodySink;
  /** Bytes read from the source so far. */
  bytes = 0;

  /** source undefined: a request without a body (nothing to read, already complete). */
  constructor(
    private readonly source: Readable | undefined,
    private readonly limit = REPLAY_LIMIT,
  ) {
    if (!source) {
      this.ended = true;
      return;
    }
    source.pause();
    source.on("data", (c: Buffer) => this.onData(c));
    source.once("end", () => {
      this.ended = true;
      this.sink?.end();
    });
    source.once("error", (e: Error) => {
      this.failed = e;
    });
  }

  /** False once more than the limit was read (a retry can no longer resend it). */
  get replayable(): boolean {
    return !this.overflowed && !this.failed;
  }

  /** True when the whole body has been read. */
  get complete(): boolean {
    return this.ended;
  }

  /** The whole body, when it is complete and was kept. */
  buffered(): Buffer | undefined {
    return this.ended && !this.overflowed ? Buffer.concat(this.chunks) : undefined;
  }

  /** Sends the body to a new sink: the kept chunks first, then live data. */
  attach(sink: BodySink): void {
    this.detach();
    this.sink = sink;
    for (const c of this.chunks) sink.write(c);
    if (this.ended) {
      sink.end();
      return;
    }
    this.source?.resume();
  }

  /** Stops feeding the current sink (its attempt is abandoned). */
  detach(): void {
    if (!this.sink) return;
    this.sink = undefined;
    if (!this.ended) this.source?.pause();
  }

  private onData(c: Buffer): void {
    this.bytes += c.length;
    if (!this.overflowed) {
      if (this.kept + c.length <= this.limit) {
        this.chunks.push(c);
        this.kept += c.length;
      } else {
        this.overflowed = true;
        this.chunks.length = 0;
        this.kept = 0;
      }
    }
    const sink = this.sink;
    const source = this.source as Readable;
    if (!sink) {
      source.pause();
      return;
    }
    if (!sink.write(c)) {
      source.pause();
      sink.once("drain", () => {
        if (this.sink === sink) source.resume();
      });
    }
  }
}
