/**
 * What the forwarding layers and the upstream clients exchange: a request head going up, the
 * response coming back, and how an exchange failed before its response.
 */
import type { IncomingHttpHeaders } from "node:http";
import type { Readable } from "node:stream";
import type { BodySink } from "./body.js";

/** The head of a request as sent upstream. */
export interface UpstreamHead {
  method: string;
  path: string;
  authority: string;
  /** Lower-case names, no pseudo-headers, no hop-by-hop headers. */
  headers: Record<string, string | string[]>;
}

/** A response head from upstream, with its body still streaming. */
export interface UpstreamResponse {
  status: number;
  headers: IncomingHttpHeaders;
  body: Readable;
  /** The whole body, when it arrived with the head: read this instead of `body` (no stream made). */
  whole?: Buffer[];
  /** Trailers, once the body has ended (h2/gRPC; HTTP/1.1 chunked trailers). */
  trailers(): IncomingHttpHeaders | undefined;
  /** The response was its head alone (h2 HEADERS with END_STREAM: gRPC's trailers-only answer). */
  headOnly: boolean;
}

/** Why an exchange failed before a response head arrived. */
export type ExchangeFailure =
  | { kind: "connect-failure"; error: Error }
  | { kind: "denied"; status: number; error: Error }
  | { kind: "reset"; error: Error }
  | { kind: "refused-stream"; error: Error };

/** One request in flight upstream. */
export interface Exchange {
  /** Where the request body goes (end it when the downstream body ends). */
  body: BodySink;
  /** Settles with the response head, or the failure. */
  response: Promise<{ ok: true; response: UpstreamResponse } | { ok: false; failure: ExchangeFailure }>;
  /** Abandons the exchange (timeout, downstream gone): the upstream stream is reset. */
  abort(): void;
}

/** Connection settings from the DestinationRule's connectionPool. */
export interface ClientSettings {
  maxRequestsPerConnection?: number;
  idleTimeoutMs?: number;
  /** Give up opening the upstream connection after this long (DestinationRule tcp.connectTimeout). */
  connectTimeoutMs?: number;
}
