/**
 * The proxy's HTTP/1.1 server side for connections it accepted itself: requests parsed with
 * h1-codec.ts straight from the socket's bytes and answered with one write per response where
 * it can, instead of node:http's IncomingMessage/ServerResponse pair per request.
 *
 * What it does not speak it hands over, at a request boundary and with the bytes already read,
 * to the node:http entry (h1-entry.ts): Upgrade and CONNECT requests, HTTP/1.0, and Expect.
 *
 * Invariants:
 * - One request at a time per connection: bytes of a pipelined next request wait (the socket is
 *   paused when they pile up) until the current response has been written.
 * - A response that ends before its request body was read closes the connection, since what is
 *   left of that body cannot be told from a next request without reading it.
 * - A head that cannot be parsed is answered 4xx with its reason and the connection closed; so is
 *   a target that cannot be made canonical (request-target.ts): what is routed, authorized and
 *   sent on is the canonical path, never the bytes as sent.
 */
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from "node:http";
import type { Socket } from "node:net";
import { type Duplex, Readable } from "node:stream";
import { COALESCE_FROM, Coalescer } from "../copy.js";
import { type Downstream, endToEnd, grpcStatusForHttp, isGrpc, type ResponseWriter, responseHeaders, trailersOnly } from "./downstream.js";
import {
  assertWritable,
  BodyDecoder,
  chunkFrame,
  headerLines,
  isHeadError,
  LAST_CHUNK,
  parseRequestHead,
  type RequestHead,
  reasonPhrase,
  wantsClose,
} from "./h1-codec.js";
import { withSniffedBytes } from "./protocol.js";
import { type CanonicalTarget, canonicalAuthority, canonicalTarget, isTargetError } from "./request-target.js";
import { upgradeProtocols } from "./upgrade.js";

/** Bytes of pipelined requests held while one is being answered before reading pauses. */
const PIPELINE_HOLD = 64 * 1024;

/** What the server needs from its owner. */
export interface H1ServerHooks<S> {
  /** Handles one request. */
  handle(scope: S, down: Downstream): Promise<void>;
  /** A handler threw: log it; cleanup drops the connection. */
  crashed(e: Error, cleanup: () => void): void;
  /** Takes a connection this server does not speak (bytes already read are replayed first). */
  handOver(sock: Duplex, scope: S): void;
  /** A fixed limit refused a request: `http1_head_size` (431) or `http1_head_timeout` (408). */
  limitHit(limit: string): void;
}

/** Limits of the server (milliseconds). */
export interface H1ServerOptions {
  /** A partial head older than this closes the connection (slow-loris). */
  headersTimeoutMs: number;
}

function needsNodeHttp(h: RequestHead): boolean {
  if (h.method === "CONNECT" || h.minor === 0 || h.headers.expect !== undefined) return true;
  if (h.headers.upgrade === undefined || !/(^|,)\s*upgrade\s*(,|$)/i.test(String(h.headers.connection ?? ""))) return false;
  // An offer of h2c alone is declined by serving the request as HTTP/1.1 (its Upgrade and
  // HTTP2-Settings are hop-by-hop and dropped), as Envoy does; the client carries on in HTTP/1.1.
  return upgradeProtocols(h.headers.upgrade).some((p) => p !== "h2c");
}

/** One accepted connection. */
class Conn<S> {
  private buf: Buffer | undefined;
  private active: Exchange<S> | undefined;
  private headTimer: NodeJS.Timeout | undefined;
  private done = false;

  constructor(
    readonly sock: Duplex,
    readonly scope: S,
    readonly server: H1Server<S>,
  ) {
    sock.on("data", this.onData);
    sock.on("end", this.onEnd);
    sock.once("close", this.onClose);
    sock.on("error", () => undefined);
  }

  private readonly onData = (c: Buffer): void => {
    // Answered and closing: what the client still sends is not read.
    if (this.done) return;
    this.buf = this.buf ? Buffer.concat([this.buf, c]) : c;
    if (this.active) {
      this.active.feed(this);
      if (this.active && (this.buf?.length ?? 0) > PIPELINE_HOLD) this.sock.pause();
      return;
    }
    this.next();
  };

  private readonly onEnd = (): void => {
    // The client finished sending: answer what is in flight, then close.
    if (!this.active) this.sock.end();
    else this.active.clientEnded = true;
  };

  private readonly onClose = (): void => {
    this.done = true;
    clearTimeout(this.headTimer);
    this.server.forget(this);
    this.active?.gone();
  };

  /** Takes the buffered bytes: the active request's body, or the next request's head. */
  take(): Buffer | undefined {
    return this.buf;
  }

  /** Keeps what the active request did not use. */
  keep(rest: Buffer | undefined): void {
    this.buf = rest && rest.length > 0 ? rest : undefined;
  }

  /** Parses and starts the next request if its head is here. */
  next(): void {
    if (this.done || this.active) return;
    const buf = this.buf;
    if (!buf) return;
    const r = parseRequestHead(buf);
    if (r === "incomplete") {
      this.headTimer ??= setTimeout(() => this.fail(408, "request head not complete in time"), this.server.options.headersTimeoutMs);
      return;
    }
    clearTimeout(this.headTimer);
    this.headTimer = undefined;
    if (isHeadError(r)) {
      this.fail(r.status, r.error);
      return;
    }
    if (needsNodeHttp(r.head)) {
      this.done = true;
      this.sock.off("data", this.onData);
      this.sock.off("end", this.onEnd);
      this.sock.off("close", this.onClose);
      this.server.forget(this);
      this.server.hooks.handOver(withSniffedBytes(this.sock, buf), this.scope);
      return;
    }
    const target = canonicalTarget(r.head.method, r.head.target, true);
    if (isTargetError(target)) {
      this.fail(400, target.error);
      return;
    }
    // Repeats are joined with commas, which canonicalAuthority refuses: a second Host would make
    // the authority that routes and rules see differ from the one an app picks (RFC 9112 §3.2).
    const authority = target.authority ?? canonicalAuthority(r.head.headers.host === undefined ? undefined : String(r.head.headers.host));
    if (typeof authority !== "string") {
      this.fail(400, authority.error);
      return;
    }
    this.keep(buf.subarray(r.used));
    const ex = new Exchange(this, r.head, target, authority);
    this.active = ex;
    ex.feed(this);
    this.server.run(this, ex);
  }

  /** The active exchange finished its response. */
  finished(ex: Exchange<S>, close: boolean): void {
    if (this.active !== ex) return;
    this.active = undefined;
    if (close || ex.clientEnded) {
      this.done = true;
      this.sock.end();
      return;
    }
    this.sock.resume();
    this.next();
  }

  /** Answers a request that cannot be read, and closes. */
  private fail(status: number, why: string): void {
    if (this.done) return;
    this.done = true;
    if (status === 431) this.server.hooks.limitHit("http1_head_size");
    if (status === 408) this.server.hooks.limitHit("http1_head_timeout");
    const body = `bad request: ${why}\n`;
    this.sock.end(
      `HTTP/1.1 ${status} ${reasonPhrase(status)}\r\ncontent-type: text/plain\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
    );
  }
}

/** One request and its response on a connection. */
class Exchange<S> implements Downstream {
  readonly protocol = "http1" as const;
  readonly method: string;
  readonly path: string;
  readonly authority: string;
  readonly headers: Record<string, string | string[]>;
  readonly grpc: boolean;
  readonly bodyless: boolean;
  private stream: Readable | undefined;
  private readonly decoder: BodyDecoder;
  private sent = false;
  private finishedResponse = false;
  private goneFns: (() => void)[] = [];
  private readonly closeAfter: boolean;
  /** The client half-closed its side while this request was in flight. */
  clientEnded = false;

  constructor(
    private readonly conn: Conn<S>,
    head: RequestHead,
    target: CanonicalTarget,
    authority: string,
  ) {
    this.method = head.method;
    this.path = target.path;
    this.authority = authority;
    this.headers = endToEnd(head.headers as IncomingHttpHeaders);
    this.grpc = isGrpc(head.headers as IncomingHttpHeaders);
    this.closeAfter = wantsClose(head.headers, head.minor);
    this.decoder = new BodyDecoder(head.framing);
    this.bodyless = this.decoder.done;
  }

  /** The request body; made on first use (a bodiless request usually never needs one). */
  get body(): Readable {
    if (!this.stream) {
      const conn = this.conn;
      this.stream = new Readable({ read: () => conn.sock.resume() });
      if (this.decoder.done) this.stream.push(null);
    }
    return this.stream;
  }

  /** Feeds buffered bytes to the body. */
  feed(conn: Conn<S>): void {
    if (this.decoder.done || this.decoder.error) return;
    const buf = conn.take();
    if (!buf) return;
    // Made before the decoder can finish, so the stream ends once, below.
    const body = this.body;
    const used = this.decoder.feed(buf, 0, (c) => {
      if (!body.push(c)) conn.sock.pause();
    });
    conn.keep(buf.subarray(used));
    if (this.decoder.error) {
      body.destroy(new Error(`request body: ${this.decoder.error}`));
      conn.sock.destroy();
      return;
    }
    if (this.decoder.done) body.push(null);
  }

  get headersSent(): boolean {
    return this.sent;
  }

  private closing(): boolean {
    return this.closeAfter || this.conn.server.draining || !this.decoder.done;
  }

  private complete(): void {
    if (this.finishedResponse) return;
    this.finishedResponse = true;
    this.conn.finished(this, this.closing());
  }

  reply(status: number, body: string, headers: OutgoingHttpHeaders = {}, grpcStatus?: number): number {
    if (this.sent) {
      this.abort();
      return 0;
    }
    this.sent = true;
    const payload = Buffer.from(body);
    const extra: OutgoingHttpHeaders = this.grpc
      ? {
          "content-type": "application/grpc",
          "grpc-status": String(grpcStatus ?? grpcStatusForHttp(status)),
          "grpc-message": encodeURIComponent(body.trim()),
        }
      : {};
    const all: OutgoingHttpHeaders = { "content-type": "text/plain", "content-length": payload.length, ...headers, ...extra };
    const headOnly = this.method === "HEAD" || status === 204 || status === 304;
    const head = this.headBytes(status, all, "");
    this.conn.sock.write(headOnly ? head : Buffer.concat([head, payload]));
    this.complete();
    return headOnly ? 0 : payload.length;
  }

  private headBytes(status: number, headers: OutgoingHttpHeaders, framing: string): Buffer {
    const clean = responseHeaders(headers) as Record<string, string | number | string[]>;
    assertWritable(clean);
    const close = this.closing() ? "connection: close\r\n" : "";
    return Buffer.from(`HTTP/1.1 ${status} ${reasonPhrase(status)}\r\n${headerLines(clean)}${framing}${close}\r\n`, "latin1");
  }

  start(status: number, headers: OutgoingHttpHeaders): ResponseWriter {
    this.sent = true;
    const sock = this.conn.sock;
    const bodiless = this.method === "HEAD" || status === 204 || status === 304 || status < 200;
    const chunked = !bodiless && headers["content-length"] === undefined;
    let head: Buffer | undefined;
    try {
      head = this.headBytes(status, headers, chunked ? "transfer-encoding: chunked\r\n" : "");
    } catch (e) {
      this.conn.sock.destroy(e as Error);
      return { write: () => true, onDrain: () => undefined, end: () => undefined };
    }
    // The head waits for the first body bytes or the end, so a small response is one write; a
    // large body's frames of one event-loop turn go out together (copy.ts's Coalescer).
    let co: Coalescer | undefined;
    const send = (parts: Buffer[]): boolean => {
      if (head) {
        parts.unshift(head);
        head = undefined;
      }
      const data = parts.length === 1 ? (parts[0] as Buffer) : Buffer.concat(parts);
      if (!co && data.length >= COALESCE_FROM) co = new Coalescer(sock);
      return co ? co.write(data) : sock.write(data);
    };
    return {
      write: (c) => {
        if (bodiless || c.length === 0) return true;
        return send(chunked ? chunkFrame(c) : [c]);
      },
      onDrain: (fn) => sock.once("drain", fn),
      end: (trailers?: IncomingHttpHeaders) => {
        if (chunked) {
          const t = trailers ? trailersOnly(trailers) : undefined;
          if (t && Object.keys(t).length > 0) {
            try {
              assertWritable(t);
              send([Buffer.from(`0\r\n${headerLines(t)}\r\n`, "latin1")]);
            } catch (e) {
              sock.destroy(e as Error);
              return;
            }
          } else send([LAST_CHUNK]);
        } else if (head) send([]);
        this.complete();
      },
    };
  }

  abort(): void {
    this.conn.sock.destroy();
  }

  onGone(fn: () => void): void {
    this.goneFns.push(fn);
  }

  /** The connection closed: anyone waiting for this response learns the client is gone. */
  gone(): void {
    if (!this.decoder.done) this.stream?.destroy(new Error("client closed the connection mid-body"));
    if (this.finishedResponse) return;
    for (const fn of this.goneFns.splice(0)) fn();
  }
}

/** An HTTP/1.1 server fed accepted connections, with a drain switch. */
export class H1Server<S> {
  private readonly conns = new Set<Conn<S>>();
  /** Responses say Connection: close and their connections close after them. */
  draining = false;

  constructor(
    readonly hooks: H1ServerHooks<S>,
    readonly options: H1ServerOptions,
  ) {}

  /** Serves a connection's requests under its scope. */
  adopt(sock: Duplex, scope: S): void {
    // A chunked response ends with a write of its own: Nagle would hold it for the client's
    // delayed ACK (40 ms), as for any response written in two parts.
    (sock as Partial<Socket>).setNoDelay?.(true);
    this.conns.add(new Conn(sock, scope, this));
    sock.resume();
  }

  /** Runs the handler for an exchange, guarding against it throwing. */
  run(conn: Conn<S>, ex: Downstream): void {
    this.hooks.handle(conn.scope, ex).catch((e: Error) => this.hooks.crashed(e, () => conn.sock.destroy()));
  }

  /** A connection closed or was handed over. */
  forget(conn: Conn<S>): void {
    this.conns.delete(conn);
  }

  /** Draining (a handover or SIGTERM): each connection closes after its next response. */
  drain(): void {
    this.draining = true;
  }

  /** Closes every connection, idle or not. */
  close(): void {
    for (const c of this.conns) c.sock.destroy();
    this.conns.clear();
  }
}
