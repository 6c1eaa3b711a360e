/**
 * spliceWith's write coalescing: full-frame chunks that arrive in one turn of the event loop go
 * out as one write at its end; smaller chunks go at once; a writer that does not drain still
 * pauses the reader; order and the FIN are kept. Checked on Duplex recorders and on real
 * loopback TCP sockets.
 */
import { createHash, randomBytes } from "node:crypto";
import { once } from "node:events";
import type { Socket } from "node:net";
import { Duplex } from "node:stream";
import { afterEach, describe, expect, it } from "vitest";
import { COALESCE_FROM, spliceWith } from "../../agent/proxy/copy.js";
import { closeTcpPairs, tcpPair } from "../helpers/tcp-pair.js";

/** A duplex whose readable side is fed by hand and whose writes are recorded call by call. */
class Recorder extends Duplex {
  readonly writes: Buffer[][] = [];
  private held: (() => void)[] = [];
  ended = false;

  constructor(private readonly stall = false) {
    super({ allowHalfOpen: true });
  }

  override _read(): void {}

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (e?: Error | null) => void): void {
    this.writes.push([chunk]);
    if (this.stall) this.held.push(() => cb());
    else cb();
  }

  override _writev(chunks: { chunk: Buffer }[], cb: (e?: Error | null) => void): void {
    this.writes.push(chunks.map((c) => c.chunk));
    if (this.stall) this.held.push(() => cb());
    else cb();
  }

  override _final(cb: (e?: Error | null) => void): void {
    this.ended = true;
    cb();
  }

  /** Every byte written, in order. */
  bytes(): Buffer {
    return Buffer.concat(this.writes.flat());
  }
}

const turn = () => new Promise<void>((r) => setImmediate(r));

describe("spliceWith write coalescing", () => {
  it("writes chunks below a frame at once, one write each", async () => {
    const a = new Recorder();
    const b = new Recorder();
    spliceWith(a, b, () => undefined);
    for (let i = 0; i < 3; i++) a.push(Buffer.alloc(1000, i));
    await turn();
    expect(b.writes.map((w) => w.length)).toEqual([1, 1, 1]);
  });

  it("sends full frames of one turn as one write at its end, in order", async () => {
    const a = new Recorder();
    const b = new Recorder();
    spliceWith(a, b, () => undefined);
    const frames = [0, 1, 2, 3].map((i) => Buffer.alloc(COALESCE_FROM, i));
    for (const f of frames) a.push(f);
    a.push(Buffer.from("tail"));
    await turn();
    await turn();
    // One vectored write carrying all five chunks, not five writes.
    expect(b.writes.length).toBe(1);
    expect(b.writes[0]?.length).toBe(5);
    expect(b.bytes().equals(Buffer.concat([...frames, Buffer.from("tail")]))).toBe(true);
  });

  it("ends the writer only after the coalesced bytes", async () => {
    const a = new Recorder();
    const b = new Recorder();
    spliceWith(a, b, () => undefined);
    a.push(Buffer.alloc(COALESCE_FROM, 7));
    a.push(null);
    await turn();
    await turn();
    expect(b.ended).toBe(true);
    expect(b.bytes().length).toBe(COALESCE_FROM);
  });

  it("pauses the reader once the held bytes reach the cap of a writer that does not drain", async () => {
    const a = new Recorder();
    const b = new Recorder(true);
    spliceWith(a, b, () => undefined);
    for (let i = 0; i < 64; i++) a.push(Buffer.alloc(COALESCE_FROM, i));
    await turn();
    await turn();
    expect(a.isPaused()).toBe(true);
    // Held in the writer: at most the cap plus the chunk that crossed it, not all 1 MiB.
    expect(b.writableLength).toBeLessThanOrEqual(256 * 1024 + COALESCE_FROM);
    expect(b.writableLength + a.readableLength).toBe(64 * COALESCE_FROM);
  });
});

describe("spliceWith on loopback TCP", () => {
  afterEach(closeTcpPairs);
  const pair = tcpPair;

  it("carries 32 MiB both ways with half-close, byte for byte", async () => {
    // app ⇄ (left) [splice] (right) ⇄ far: the proxy splices left and right.
    const [app, left] = await pair();
    const [right, far] = await pair();
    const done = new Promise<boolean>((resolve) => spliceWith(left, right, (r) => resolve(r.clean)));
    const size = 32 * 1024 * 1024;
    const up = randomBytes(size);
    const down = randomBytes(size / 2);
    const digest = (s: Socket) =>
      new Promise<string>((resolve) => {
        const h = createHash("sha256");
        s.on("data", (c: Buffer) => h.update(c));
        s.on("end", () => resolve(h.digest("hex")));
      });
    const farGot = digest(far);
    const appGot = digest(app);
    app.end(up);
    // The far side answers after it read everything (the other direction still flows after a FIN).
    void farGot.then(() => far.end(down));
    expect(await farGot).toBe(createHash("sha256").update(up).digest("hex"));
    expect(await appGot).toBe(createHash("sha256").update(down).digest("hex"));
    app.destroy();
    far.destroy();
    expect(await done).toBe(true);
  }, 60_000);

  it("a reset on one side reaches the other as a reset, never as a clean end, even after a half-close", async () => {
    for (const halfClosedFirst of [false, true]) {
      const [app, left] = await pair();
      const [right, far] = await pair();
      const done = new Promise<boolean>((resolve) => spliceWith(left, right, (r) => resolve(r.clean)));
      far.on("error", () => undefined);
      const seen = new Promise<string>((resolve) => {
        app.once("error", (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
        app.once("end", () => resolve("a clean end"));
        app.once("close", () => resolve("closed without an error"));
      });
      if (halfClosedFirst) {
        // The app's FIN went through (right's end() may still be under way) before far resets.
        app.end();
        await once(far, "end");
      } else {
        app.write("hello");
        await once(far, "data");
      }
      far.resetAndDestroy();
      expect(await seen).toBe("ECONNRESET");
      expect(await done).toBe(false);
    }
  });
});
