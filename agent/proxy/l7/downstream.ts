/**
 * The client side of one request, HTTP/1.1 or HTTP/2 alike, so the request pipeline is written
 * once: its head (hop-by-hop headers removed), its body, and the ways to answer — a local reply,
 * or a streamed response with trailers (gRPC's grpc-status lives there).
 */
import type { IncomingHttpHeaders, IncomingMessage, OutgoingHttpHeaders, ServerResponse } from "node:http";
import { constants as h2, type ServerHttp2Stream } from "node:http2";
import type { Readable } from "node:stream";
import { type CanonicalTarget, canonicalAuthority, canonicalTarget, isTargetError, type TargetError } from "./request-target.js";

/** Headers that describe one hop, never forwarded (RFC 9110 §7.6.1, and h2's forbidden ones). */
const HOP_BY_HOP = new Set([
  "connection",
  "keep-alive",
  "proxy-connection",
  "transfer-encoding",
  "upgrade",
  "te",
  "trailer",
  "http2-settings",
  "host",
]);

/** A request's headers without pseudo-headers and hop-by-hop ones (TE: trailers survives, gRPC needs it). */
export function endToEnd(headers: IncomingHttpHeaders): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  const connection = headers.connection;
  const named =
    connection === undefined
      ? undefined
      : String(connection)
          .toLowerCase()
          .split(",")
          .map((s) => s.trim())
          .filter(Boolean);
  for (const k in headers) {
    const v = headers[k];
    if (v === undefined || k.charCodeAt(0) === 58 || HOP_BY_HOP.has(k) || named?.includes(k)) continue;
    out[k] = v;
  }
  const te = headers.te;
  if (te !== undefined && String(te).toLowerCase().includes("trailers")) out.te = "trailers";
  return out;
}

/** HTTP status → gRPC status for replies the proxy makes to gRPC clients (as Envoy maps them). */
export function grpcStatusForHttp(status: number): number {
  if (status === 400) return 13;
  if (status === 401) return 16;
  if (status === 403) return 7;
  if (status === 404) return 12;
  if (status === 429 || status === 502 || status === 503 || status === 504) return 14;
  return 2;
}

/** Lets a request's unread body flow away (answered without reading it). */
export function discardBody(down: Downstream): void {
  if (down.bodyless) return;
  down.body.on("error", () => undefined);
  down.body.resume();
}

/** One downstream request. */
export interface Downstream {
  protocol: "http1" | "http2";
  method: string;
  path: string;
  authority: string;
  headers: Record<string, string | string[]>;
  body: Readable;
  /** The request has no body at all (no length, no chunks): `body` need not be read. */
  readonly bodyless?: boolean;
  /** The client speaks gRPC (content-type application/grpc…). */
  grpc: boolean;
  /** True once a response head went out. */
  readonly headersSent: boolean;
  /** Answers with a complete response made by the proxy; gRPC clients get a trailers-only reply. */
  reply(status: number, body: string, headers?: OutgoingHttpHeaders, grpcStatus?: number): number;
  /** Starts a streamed response; returns the body writer. headOnly: the head is the whole answer. */
  start(status: number, headers: OutgoingHttpHeaders, headOnly?: boolean): ResponseWriter;
  /** Resets the client's request (the response cannot be completed). */
  abort(): void;
  /** Registers a callback for the client going away before the response completed. */
  onGone(fn: () => void): void;
}

/** Writes a streamed response body. */
export interface ResponseWriter {
  /** False: wait for drain. */
  write(chunk: Buffer): boolean;
  onDrain(fn: () => void): void;
  /** Ends the response, with trailers when there are any. */
  end(trailers?: IncomingHttpHeaders): void;
}

/** A response's headers without pseudo-headers and hop-by-hop ones (what any hop may write). */
export function responseHeaders(headers: OutgoingHttpHeaders): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = {};
  for (const k in headers) {
    const v = headers[k];
    if (v === undefined || k.charCodeAt(0) === 58 || HOP_BY_HOP.has(k)) continue;
    out[k] = v;
  }
  return out;
}

/**
 * Fields a sender must not put in trailers (RFC 9110 §6.5.1: framing, routing, authentication,
 * response control): a client could act on them as if they came in the head.
 */
const NOT_IN_TRAILERS = new Set([
  "age",
  "authorization",
  "cache-control",
  "connection",
  "content-encoding",
  "content-length",
  "content-range",
  "content-type",
  "date",
  "expires",
  "host",
  "keep-alive",
  "location",
  "proxy-authenticate",
  "proxy-authorization",
  "proxy-connection",
  "retry-after",
  "set-cookie",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
  "vary",
  "www-authenticate",
]);

/** Trailer fields that may be passed on: no pseudo-headers, none RFC 9110 §6.5.1 keeps out of trailers. */
export function trailersOnly(t: IncomingHttpHeaders): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const k in t) {
    const v = t[k];
    if (v !== undefined && k.charCodeAt(0) !== 58 && !NOT_IN_TRAILERS.has(k)) out[k] = v;
  }
  return out;
}

/** The message is gRPC (content-type application/grpc…). */
export function isGrpc(headers: IncomingHttpHeaders): boolean {
  return String(headers["content-type"] ?? "").startsWith("application/grpc");
}

/** An HTTP/1.1 request from Node's server, with its target made canonical (request-target.ts). */
export function h1Downstream(req: IncomingMessage, res: ServerResponse, target: CanonicalTarget, authority: string): Downstream {
  return {
    protocol: "http1",
    method: req.method ?? "GET",
    path: target.path,
    authority,
    headers: endToEnd(req.headers),
    body: req,
    grpc: isGrpc(req.headers),
    get headersSent() {
      return res.headersSent;
    },
    reply(status, body, headers = {}, grpcStatus) {
      if (res.headersSent) {
        res.destroy();
        return 0;
      }
      const payload = Buffer.from(body);
      const extra = isGrpc(req.headers)
        ? {
            "content-type": "application/grpc",
            "grpc-status": String(grpcStatus ?? grpcStatusForHttp(status)),
            "grpc-message": encodeURIComponent(body.trim()),
          }
        : {};
      res.writeHead(status, { "content-type": "text/plain", "content-length": payload.length, ...headers, ...extra });
      res.end(payload);
      return payload.length;
    },
    start(status, headers) {
      res.writeHead(status, responseHeaders(headers));
      return {
        write: (c) => res.write(c),
        onDrain: (fn) => res.once("drain", fn),
        end: (trailers) => {
          if (trailers && Object.keys(trailers).length > 0 && res.chunkedEncoding) res.addTrailers(trailersOnly(trailers));
          res.end();
        },
      };
    },
    abort() {
      res.destroy();
      req.socket.destroy();
    },
    onGone(fn) {
      res.once("close", () => {
        if (!res.writableFinished) fn();
      });
    },
  };
}

/** An h2 request's authority made canonical; a Host that names another authority is refused (RFC 9113 §8.3.1). */
function h2Authority(headers: IncomingHttpHeaders): string | TargetError {
  const pseudo = headers[":authority"];
  const host = headers.host;
  const a = canonicalAuthority(pseudo === undefined ? (host === undefined ? undefined : String(host)) : String(pseudo));
  if (typeof a !== "string" || pseudo === undefined || host === undefined) return a;
  const h = canonicalAuthority(String(host));
  return h === a ? a : { error: "Host differs from :authority" };
}

/**
 * An HTTP/2 stream from Node's server (h2c prior knowledge; gRPC), or undefined once it was
 * answered 400 because its :path or authority cannot be made canonical (request-target.ts).
 */
export function h2Downstream(stream: ServerHttp2Stream, headers: IncomingHttpHeaders): Downstream | undefined {
  const method = String(headers[":method"] ?? "GET");
  const rawPath = headers[":path"];
  const target = rawPath === undefined ? { path: "/" } : canonicalTarget(method, String(rawPath), false);
  const authority = h2Authority(headers);
  const refusal = isTargetError(target) ? target : typeof authority === "string" ? undefined : authority;
  if (refusal) {
    const body = `bad request: ${refusal.error}\n`;
    stream.respond({ ":status": 400, "content-type": "text/plain", "content-length": Buffer.byteLength(body) });
    stream.end(body);
    return undefined;
  }
  let sent = false;
  return {
    protocol: "http2",
    method,
    path: (target as CanonicalTarget).path,
    authority: authority as string,
    headers: endToEnd(headers),
    body: stream,
    grpc: isGrpc(headers),
    get headersSent() {
      return sent || stream.headersSent;
    },
    reply(status, body, extra = {}, grpcStatus) {
      if (stream.destroyed || stream.closed) return 0;
      if (sent || stream.headersSent) {
        stream.close(h2.NGHTTP2_INTERNAL_ERROR);
        return 0;
      }
      sent = true;
      if (isGrpc(headers)) {
        stream.respond(
          {
            ":status": 200,
            "content-type": "application/grpc",
            "grpc-status": String(grpcStatus ?? grpcStatusForHttp(status)),
            "grpc-message": encodeURIComponent(body.trim()),
            ...responseHeaders(extra),
          },
          { endStream: true },
        );
        return 0;
      }
      const payload = Buffer.from(body);
      stream.respond({ ":status": status, "content-type": "text/plain", "content-length": payload.length, ...responseHeaders(extra) });
      stream.end(payload);
      return payload.length;
    },
    start(status, h, headOnly = false) {
      sent = true;
      if (headOnly) {
        // gRPC's trailers-only answer: its status must arrive in a HEADERS frame that ends the stream.
        stream.respond({ ":status": status, ...responseHeaders(h) }, { endStream: true });
        return { write: () => true, onDrain: () => undefined, end: () => undefined };
      }
      stream.respond({ ":status": status, ...responseHeaders(h) }, { waitForTrailers: true });
      return {
        write: (c) => stream.write(c),
        onDrain: (fn) => stream.once("drain", fn),
        end: (trailers) => {
          stream.once("wantTrailers", () => {
            if (trailers && Object.keys(trailers).length > 0) stream.sendTrailers(trailersOnly(trailers));
            else stream.close();
          });
          stream.end();
        },
      };
    },
    abort() {
      if (!stream.destroyed) stream.close(h2.NGHTTP2_INTERNAL_ERROR);
    },
    onGone(fn) {
      stream.once("close", () => {
        if (!stream.writableFinished || stream.rstCode !== h2.NGHTTP2_NO_ERROR) fn();
      });
    },
  };
}
