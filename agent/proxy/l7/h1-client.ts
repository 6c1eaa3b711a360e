/**
 * HTTP/1.1 requests over the proxy's own upstream connections (HBONE streams or direct sockets),
 * kept alive and reused one request at a time, written and parsed with h1-codec.ts instead of
 * node:http's client: over an HBONE stream Node's client runs its parser from JS per chunk and
 * builds several objects per request, which made it most of the L7 path's cost.
 *
 * Invariants:
 * - A connection carries one exchange at a time; it returns to the idle list only after the
 *   request was fully written and the response fully read, with nothing extra on the wire.
 * - Each connection has one set of listeners for its life; exchanges take turns on it.
 * - A connection that fails or is left mid-message is destroyed, never reused.
 */
import { type Duplex, Readable } from "node:stream";
import type { BodySink } from "./body.js";
import type { ClientSettings, Exchange, ExchangeFailure, UpstreamHead, UpstreamResponse } from "./exchange.js";
import {
  assertRequestLine,
  assertWritable,
  assertWritableValue,
  BodyDecoder,
  chunkFrame,
  headerLines,
  isHeadError,
  LAST_CHUNK,
  parseResponseHead,
  type ResponseHead,
  responseFraming,
  wantsClose,
} from "./h1-codec.js";
import { TunnelRefusedError } from "./tunnel.js";

const DEFAULT_IDLE_MS = 60 * 60 * 1000;

/** Methods whose repetition has the effect of one request (RFC 9110 §9.2.2). */
const IDEMPOTENT = new Set(["GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"]);

/** A request's body on its way to a connection: held until the head can go out with it. */
class RequestWriter implements BodySink {
  private conn?: Conn;
  private readonly held: Buffer[] = [];
  private ended = false;
  private headSent = false;
  private chunked = false;
  private bodyBytes = 0;
  private readonly drainWaiters: (() => void)[] = [];
  /** The whole request has been written. */
  finished = false;

  constructor(
    private readonly head: UpstreamHead,
    private readonly onFinished: () => void,
  ) {}

  /** The connection is ready: send what can be sent. */
  bind(conn: Conn): void {
    this.conn = conn;
    for (const fn of this.drainWaiters.splice(0)) conn.sock.once("drain", fn);
    this.flush();
  }

  private flush(): void {
    const conn = this.conn;
    if (!conn || this.finished) return;
    const h = this.head;
    const hasLength = h.headers["content-length"] !== undefined;
    if (!this.headSent) {
      // Without a declared length the head waits for the first body bytes or the end, so a
      // bodiless request goes out without framing and one with a body gets chunked coding.
      if (!hasLength && !this.ended && this.held.length === 0) return;
      this.headSent = true;
      this.chunked = !hasLength && !(this.ended && this.held.length === 0);
      const framing = this.chunked ? "transfer-encoding: chunked\r\n" : "";
      const parts: Buffer[] = [
        Buffer.from(`${h.method} ${h.path} HTTP/1.1\r\nhost: ${h.authority}\r\n${headerLines(h.headers)}${framing}\r\n`, "latin1"),
      ];
      for (const c of this.held.splice(0)) parts.push(...this.frame(c));
      if (this.ended && this.chunked) parts.push(LAST_CHUNK);
      conn.sock.write(parts.length === 1 ? parts[0] : Buffer.concat(parts));
    } else {
      for (const c of this.held.splice(0)) for (const p of this.frame(c)) conn.sock.write(p);
      if (this.ended && this.chunked) conn.sock.write(LAST_CHUNK);
    }
    if (this.ended) {
      this.finished = true;
      this.onFinished();
    }
  }

  private frame(c: Buffer): Buffer[] {
    return this.chunked ? chunkFrame(c) : [c];
  }

  /**
   * True when the request can be sent again as it was on another connection: complete, with no
   * body, and a method RFC 9110 §9.2.2 calls idempotent (a proxy must not repeat any other).
   */
  get replayable(): boolean {
    return this.ended && this.bodyBytes === 0 && IDEMPOTENT.has(this.head.method);
  }

  /** Forgets the connection it was written to, so bind() sends the request again. */
  rewind(): void {
    this.conn = undefined;
    this.headSent = false;
    this.finished = false;
  }

  write(chunk: Buffer | string): boolean {
    const c = typeof chunk === "string" ? Buffer.from(chunk) : chunk;
    if (this.ended || c.length === 0) return true;
    this.bodyBytes += c.length;
    this.held.push(c);
    if (!this.conn) return true;
    this.flush();
    return !this.conn.sock.writableNeedDrain;
  }

  end(chunk?: Buffer | string): void {
    if (this.ended) return;
    if (chunk !== undefined) this.write(chunk);
    this.ended = true;
    this.flush();
  }

  once(_event: "drain", fn: () => void): void {
    if (this.conn) this.conn.sock.once("drain", fn);
    else this.drainWaiters.push(fn);
  }
}

/** One upstream connection and the exchange it carries now. */
class Conn {
  buf: Buffer | undefined;
  served = 0;
  idleSince = 0;
  current: Active | undefined;
  dead = false;

  constructor(
    readonly sock: Duplex,
    private readonly pool: H1Pool,
  ) {
    sock.on("data", (c: Buffer) => this.onData(c));
    sock.on("end", () => this.onEnd());
    sock.on("close", () => this.onClose());
    sock.on("error", () => undefined);
  }

  private onData(c: Buffer): void {
    const a = this.current;
    if (!a) {
      // Bytes nobody asked for: the connection's framing is lost.
      this.kill();
      return;
    }
    this.buf = this.buf ? Buffer.concat([this.buf, c]) : c;
    a.consume(this);
  }

  private onEnd(): void {
    const a = this.current;
    if (a?.decoder?.closed()) a.bodyDone(this);
    this.kill();
  }

  private onClose(): void {
    this.dead = true;
    this.pool.forget(this);
    this.current?.connectionLost(this, new Error("upstream connection closed"));
  }

  /** Destroys the connection; whoever uses it learns through close. */
  kill(): void {
    if (this.dead) return;
    this.dead = true;
    this.sock.destroy();
  }
}

/** One exchange's response side on a connection. */
class Active {
  head: ResponseHead | undefined;
  decoder: BodyDecoder | undefined;
  body: Readable | undefined;
  private settled = false;
  private complete = false;
  /** Some byte of an answer arrived on the connection. */
  private answered = false;
  closeAfter = false;

  constructor(
    readonly request: UpstreamHead,
    readonly writer: RequestWriter,
    private readonly resolve: (r: Awaited<Exchange["response"]>) => void,
    private readonly released: (conn: Conn, reusable: boolean) => void,
    /** The connection was lost before any answer: true when the request was sent again elsewhere. */
    private readonly replay: () => boolean,
  ) {}

  fail(failure: ExchangeFailure): void {
    if (this.settled) return;
    this.settled = true;
    this.resolve({ ok: false, failure });
  }

  consume(conn: Conn): void {
    this.answered = true;
    while (conn.buf && conn.buf.length > 0 && !this.complete) {
      if (!this.head) {
        const r = parseResponseHead(conn.buf);
        if (r === "incomplete") return;
        if (isHeadError(r)) {
          this.protocolError(conn, `upstream sent a bad response head: ${r.error}`);
          return;
        }
        conn.buf = r.used < conn.buf.length ? conn.buf.subarray(r.used) : undefined;
        if (r.head.status === 101) {
          // This client never asks to upgrade (upgrade.ts carries Upgrade requests; Upgrade and
          // Connection are hop-by-hop, dropped from what is sent here): a switch
          // unasked means what follows is not an HTTP response to this request.
          this.protocolError(conn, "upstream switched protocols (101) though no upgrade was asked");
          return;
        }
        // Other 1xx answers are interim (100 Continue, 103 Early Hints); the real head follows.
        if (r.head.status < 200) continue;
        const framing = responseFraming(this.request.method, r.head);
        if (typeof framing === "string") {
          this.protocolError(conn, `upstream response: ${framing}`);
          return;
        }
        this.head = r.head;
        this.closeAfter = framing.kind === "close" || wantsClose(r.head.headers, r.head.minor);
        const decoder = new BodyDecoder(framing);
        this.decoder = decoder;
        // A body already here in full (most small answers) is handed over as chunks, with no
        // stream to build and drive; a stream is made only if someone asks for one.
        const first: Buffer[] = [];
        const buf = conn.buf;
        if (buf) {
          const used = decoder.feed(buf, 0, (c) => first.push(c));
          conn.buf = used < buf.length ? buf.subarray(used) : undefined;
          if (decoder.error) {
            this.protocolError(conn, `upstream response body: ${decoder.error}`);
            return;
          }
        }
        const whole = decoder.done ? first : undefined;
        if (!whole) {
          this.body = this.stream(conn);
          for (const c of first) if (!this.body.push(c)) conn.sock.pause();
        }
        if (!this.settled) {
          this.settled = true;
          let body = this.body;
          const response: UpstreamResponse = {
            status: r.head.status,
            headers: r.head.headers as UpstreamResponse["headers"],
            get body(): Readable {
              if (!body) {
                body = new Readable({ read() {} });
                for (const c of whole ?? []) body.push(c);
                body.push(null);
              }
              return body;
            },
            trailers: () => decoder.trailers as UpstreamResponse["headers"] | undefined,
            headOnly: false,
          };
          if (whole) response.whole = whole;
          this.resolve({ ok: true, response });
        }
        if (decoder.done) {
          this.bodyDone(conn);
          return;
        }
        continue;
      }
      const buf = conn.buf;
      const decoder = this.decoder as BodyDecoder;
      const body = this.body as Readable;
      const used = decoder.feed(buf, 0, (chunk) => {
        if (!body.push(chunk)) conn.sock.pause();
      });
      conn.buf = used < buf.length ? buf.subarray(used) : undefined;
      if (decoder.error) {
        this.protocolError(conn, `upstream response body: ${decoder.error}`);
        return;
      }
      if (decoder.done) this.bodyDone(conn);
      else if (used === 0) return;
    }
  }

  private stream(conn: Conn): Readable {
    return new Readable({
      read: () => conn.sock.resume(),
      destroy: (e, cb) => {
        // Abandoned mid-body (a retry, the client gone): the connection's framing is lost.
        if (!this.complete) {
          this.complete = true;
          conn.current = undefined;
          conn.kill();
        }
        cb(e);
      },
    });
  }

  bodyDone(conn: Conn): void {
    if (this.complete) return;
    this.complete = true;
    this.body?.push(null);
    const extra = conn.buf !== undefined && conn.buf.length > 0;
    this.released(conn, !extra && !this.closeAfter);
  }

  private protocolError(conn: Conn, why: string): void {
    const e = new Error(why);
    if (this.body) this.body.destroy(e);
    else this.fail({ kind: "reset", error: e });
    this.complete = true;
    conn.kill();
  }

  connectionLost(conn: Conn, e: Error): void {
    if (this.complete) return;
    if (this.decoder?.closed()) {
      this.bodyDone(conn);
      return;
    }
    this.complete = true;
    if (this.body) this.body.destroy(e);
    else if (this.answered || !this.replay()) this.fail({ kind: "reset", error: e });
  }
}

/** Keep-alive HTTP/1.1 connections to one upstream target for one source. */
export class H1Pool {
  private readonly idle: Conn[] = [];
  private live = 0;
  /** When this pool last started a request (ms epoch). */
  lastUsed = Date.now();

  constructor(
    private readonly open: () => Promise<Duplex>,
    private readonly settings: ClientSettings,
  ) {}

  /** Connections open now (busy or idle). */
  get size(): number {
    return this.live;
  }

  /** Starts one request. */
  send(head: UpstreamHead): Exchange {
    this.lastUsed = Date.now();
    let conn: Conn | undefined;
    let aborted = false;
    let active: Active | undefined;
    let resolveResponse!: (r: Awaited<Exchange["response"]>) => void;
    const response = new Promise<Awaited<Exchange["response"]>>((r) => {
      resolveResponse = r;
    });
    let requestDone = false;
    let responseDone: { conn: Conn; reusable: boolean } | undefined;
    const settleConn = () => {
      if (!requestDone || !responseDone) return;
      const { conn: c, reusable } = responseDone;
      c.current = undefined;
      this.release(c, reusable);
    };
    const writer = new RequestWriter(head, () => {
      requestDone = true;
      settleConn();
    });
    try {
      assertRequestLine(head.method, head.path);
      assertWritable(head.headers);
      assertWritableValue("host", head.authority);
    } catch (e) {
      resolveResponse({ ok: false, failure: { kind: "connect-failure", error: e as Error } });
      return { body: writer, response, abort: () => undefined };
    }
    let reused = false;
    let replayed = false;
    // A kept-alive connection can be closed by the upstream just as a request goes out on it
    // (the idle-timeout race). Sent nowhere else yet and answered with nothing, a request that is
    // safe to repeat is sent once more on a fresh connection instead of failing with a reset.
    const replay = (): boolean => {
      if (!reused || replayed || aborted || !writer.replayable) return false;
      replayed = true;
      writer.rewind();
      fresh();
      return true;
    };
    const start = (c: Conn) => {
      if (aborted) {
        this.release(c, true);
        resolveResponse({ ok: false, failure: { kind: "reset", error: new Error("aborted") } });
        return;
      }
      conn = c;
      c.served++;
      active = new Active(
        head,
        writer,
        resolveResponse,
        (cc, reusable) => {
          responseDone = { conn: cc, reusable };
          // A response that ended before its request was written (an early answer) ends the connection.
          if (!requestDone) {
            cc.current = undefined;
            cc.kill();
            return;
          }
          settleConn();
        },
        replay,
      );
      c.current = active;
      writer.bind(c);
    };
    const fresh = () => {
      reused = false;
      this.live++;
      this.open().then(
        (sock) => {
          start(new Conn(sock, this));
        },
        (e: Error) => {
          this.live--;
          const failure: ExchangeFailure =
            e instanceof TunnelRefusedError && e.status === 403
              ? { kind: "denied", status: 403, error: e }
              : { kind: "connect-failure", error: e };
          resolveResponse({ ok: false, failure });
        },
      );
    };
    const idle = this.takeIdle();
    if (idle) {
      reused = true;
      start(idle);
    } else fresh();
    return {
      body: writer,
      response,
      abort: () => {
        aborted = true;
        if (conn && conn.current === active) {
          active?.connectionLost(conn, new Error("request abandoned"));
          active?.fail({ kind: "reset", error: new Error("aborted") });
          conn.current = undefined;
          conn.kill();
        }
      },
    };
  }

  private takeIdle(): Conn | undefined {
    for (;;) {
      const c = this.idle.pop();
      if (!c) return undefined;
      if (!c.dead) return c;
    }
  }

  private release(c: Conn, reusable: boolean): void {
    const max = this.settings.maxRequestsPerConnection ?? 0;
    if (!reusable || c.dead || (max > 0 && c.served >= max)) {
      c.kill();
      return;
    }
    c.idleSince = Date.now();
    // A body that pushed back may have left it paused; an idle connection must still see a close.
    c.sock.resume();
    this.idle.push(c);
  }

  /** A connection closed: it is no longer counted or offered. */
  forget(c: Conn): void {
    this.live--;
    const i = this.idle.indexOf(c);
    if (i >= 0) this.idle.splice(i, 1);
  }

  /** Closes connections idle longer than the idle timeout; true when the pool is empty. */
  sweep(now: number): boolean {
    const limit = this.settings.idleTimeoutMs ?? DEFAULT_IDLE_MS;
    for (const c of [...this.idle]) if (now - c.idleSince > limit) c.kill();
    return this.live === 0;
  }

  /** Closes every connection. */
  close(): void {
    for (const c of this.idle.splice(0)) c.kill();
  }
}
