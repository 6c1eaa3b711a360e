/**
 * Limits of the proxy's listeners: what one peer, session or pod may hold before the proxy refuses
 * more. Each is counted in weft_limit_hits_total{limit} when hit. Defaults and reasoning: docs/LIMITS.md.
 */

/** Per-listener limits of the node proxy. */
export interface ProxyLimits {
  /** A TLS handshake on 15008 must finish within this long (silent or slow clients are cut). */
  handshakeTimeoutMs: number;
  /** TCP connections from one source address still in their TLS handshake on 15008. */
  maxHandshakesPerPeer: number;
  /** All connections (handshaking or established) from one source address on 15008. */
  maxConnectionsPerPeer: number;
  /** HTTP/2 streams one HBONE session may have open (SETTINGS_MAX_CONCURRENT_STREAMS). */
  maxStreamsPerSession: number;
  /** nghttp2's memory budget per HBONE session, in MiB: beyond it new streams are refused. */
  sessionMemoryMb: number;
  /** Streams waiting for one pod to accept (dial in progress); more get 503. */
  maxPendingDialsPerPod: number;
  /** Largest HTTP/2 header block accepted (SETTINGS_MAX_HEADER_LIST_SIZE), in bytes. */
  maxHeaderBytes: number;
}

/** Defaults: generous for a node's legitimate peers, small enough that one peer cannot exhaust the proxy. */
export const DEFAULT_PROXY_LIMITS: ProxyLimits = {
  handshakeTimeoutMs: 10_000,
  maxHandshakesPerPeer: 64,
  maxConnectionsPerPeer: 1024,
  maxStreamsPerSession: 1000,
  sessionMemoryMb: 64,
  maxPendingDialsPerPod: 256,
  maxHeaderBytes: 16 * 1024,
};

/** Counts of something per key (a peer, a pod), for limits: take() refuses past the limit. */
export class KeyedCounter {
  private readonly counts = new Map<string, number>();

  /** Takes one for key unless it already holds `limit`; returns whether it was taken. */
  take(key: string, limit: number): boolean {
    const n = this.counts.get(key) ?? 0;
    if (n >= limit) return false;
    this.counts.set(key, n + 1);
    return true;
  }

  /** Gives one back. */
  release(key: string): void {
    const n = (this.counts.get(key) ?? 0) - 1;
    if (n <= 0) this.counts.delete(key);
    else this.counts.set(key, n);
  }

  /** What key holds. */
  count(key: string): number {
    return this.counts.get(key) ?? 0;
  }
}
