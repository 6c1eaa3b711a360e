/** What one upstream attempt ended with: shared by outlier detection and retry decisions. */

/**
 * Outcome of one upstream attempt. A "response" is anything the upstream answered (grpcStatus from
 * the response headers of a trailers-only gRPC answer, when present); the other kinds are locally
 * observed failures: the connection could not be opened, the stream was reset, the peer refused
 * the stream (HTTP/2 REFUSED_STREAM), or the (per-try) timeout fired.
 */
export type UpstreamOutcome =
  | { kind: "response"; status: number; grpcStatus?: number }
  | { kind: "connect-failure" }
  | { kind: "reset" }
  | { kind: "refused-stream" }
  | { kind: "timeout" };
