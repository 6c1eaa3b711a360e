import { PassThrough, Writable } from "node:stream";
import { describe, expect, it } from "vitest";
import { ReplayableBody } from "../../agent/proxy/l7/body.js";

function sink(): { w: Writable; text: () => string; ended: Promise<void> } {
  const chunks: Buffer[] = [];
  let done!: () => void;
  const ended = new Promise<void>((r) => {
    done = r;
  });
  const w = new Writable({
    write(c: Buffer, _e, cb) {
      chunks.push(c);
      cb();
    },
    final(cb) {
      done();
      cb();
    },
  });
  return { w, text: () => Buffer.concat(chunks).toString(), ended };
}

describe("ReplayableBody", () => {
  it("streams to a first sink and replays the whole body to a second", async () => {
    const src = new PassThrough();
    const body = new ReplayableBody(src, 1024);
    const a = sink();
    body.attach(a.w);
    src.write("hello ");
    src.end("world");
    await a.ended;
    expect(a.text()).toBe("hello world");
    const b = sink();
    body.attach(b.w);
    await b.ended;
    expect(b.text()).toBe("hello world");
    expect(body.replayable).toBe(true);
    expect(body.buffered()?.toString()).toBe("hello world");
    expect(body.bytes).toBe(11);
  });

  it("replays what arrived so far, then continues live, when re-attached mid-body", async () => {
    const src = new PassThrough();
    const body = new ReplayableBody(src, 1024);
    const a = sink();
    body.attach(a.w);
    src.write("part1,");
    await new Promise((r) => setImmediate(r));
    body.detach();
    const b = sink();
    body.attach(b.w);
    src.end("part2");
    await b.ended;
    expect(b.text()).toBe("part1,part2");
    expect(a.text()).toBe("part1,");
  });

  it("stops being replayable past its limit but still streams every byte", async () => {
    const src = new PassThrough();
    const body = new ReplayableBody(src, 8);
    const a = sink();
    body.attach(a.w);
    src.write("0123456789");
    src.end("abc");
    await a.ended;
    expect(a.text()).toBe("0123456789abc");
    expect(body.replayable).toBe(false);
    expect(body.buffered()).toBeUndefined();
  });
});
