/**
 * Circuit breaking of one cluster, per worker (Istio connectionPool → Envoy's circuit breakers):
 * how many requests may be in flight, how many may wait, and how many retries may run at once.
 *
 * The model: an HTTP/1.1 upstream connection carries one request at a time, so in-flight requests
 * are bounded by tcp.maxConnections; an HTTP/2 connection carries up to maxConcurrentStreams, so
 * the bound is their product when both are set. A request that finds no connection capacity waits
 * (FIFO) if fewer than http1MaxPendingRequests already wait, else overflows; Envoy uses the same
 * pending limit for both protocols. Independently, http2MaxRequests (Envoy's max_requests, which
 * applies to both protocols) bounds in-flight requests, and a request over it overflows at once
 * instead of waiting, as Envoy's pool does when attaching a stream. Unset or zero limits are
 * unlimited (Istio applies only positive values and leaves Envoy's at 2^32-1).
 *
 * Invariants:
 * - active ≤ min(connection capacity, http2MaxRequests) at all times; pending ≤ the pending limit,
 *   except that lowering the limit does not evict requests already waiting.
 * - Waiters are admitted strictly in arrival order, and only when a slot frees (or limits rise).
 * - Each admission's release() frees its slot exactly once; further calls do nothing.
 * - An aborted waiter leaves the queue at once and resolves not-ok; an abort after admission does
 *   nothing (the caller still releases).
 * - Reconfiguring keeps the accounting of in-flight and waiting requests: limits change, the
 *   requests already admitted stay counted until they release.
 * - retriesActive ≤ maxRetries; every granted retry releases exactly once.
 */

import type { ConnectionPoolSettings } from "../../../controller/api/model.js";
import type { CancelSignal } from "./cancel.js";

/** Result of asking for a request slot; not ok → answer 503 with response flag UO. */
export type Admission = { ok: true; release(): void } | { ok: false; reason: string };

/** Result of asking for a retry slot; not ok → do not retry (Envoy's retry overflow). */
export type RetryAdmission = { ok: true; release(): void } | { ok: false };

/** Counters of one limiter. */
export interface LimiterStats {
  active: number;
  pending: number;
  /** Requests refused (pending queue full or max requests reached). */
  overflows: number;
  retriesActive: number;
  retryOverflows: number;
}

interface Limits {
  connections: number;
  requests: number;
  pending: number;
  retries: number;
  /** For reasons: which setting bounds in-flight requests. */
  connectionsFrom: string;
}

function limit(v: number | undefined): number {
  return v !== undefined && v > 0 ? v : Number.POSITIVE_INFINITY;
}

function limitsOf(s: ConnectionPoolSettings | undefined, protocol: "http1" | "http2"): Limits {
  const maxConnections = limit(s?.tcp?.maxConnections);
  const streams = limit(s?.http?.maxConcurrentStreams);
  return {
    connections: protocol === "http1" ? maxConnections : maxConnections * streams,
    requests: limit(s?.http?.http2MaxRequests),
    pending: limit(s?.http?.http1MaxPendingRequests),
    retries: limit(s?.http?.maxRetries),
    connectionsFrom: protocol === "http1" ? "tcp.maxConnections" : "tcp.maxConnections × http.maxConcurrentStreams",
  };
}

interface Waiter {
  resolve(a: Admission): void;
  detach(): void;
}

/** Istio connectionPool → Envoy circuit breakers, for one cluster on one worker. */
export class RequestLimiter {
  private limits: Limits;
  private active = 0;
  private readonly queue: Waiter[] = [];
  private overflows = 0;
  private retriesActive = 0;
  private retryOverflows = 0;

  constructor(settings: ConnectionPoolSettings | undefined, protocol: "http1" | "http2") {
    this.limits = limitsOf(settings, protocol);
  }

  /** Applies new settings; in-flight and waiting requests stay counted, and raised limits admit waiters. */
  configure(settings: ConnectionPoolSettings | undefined, protocol: "http1" | "http2"): void {
    this.limits = limitsOf(settings, protocol);
    this.drain();
  }

  /** A slot at once when one is free and nobody waits; undefined otherwise (then `admit` decides). */
  tryAdmit(signal?: CancelSignal): Admission | undefined {
    if (signal?.aborted || this.queue.length > 0 || this.active >= this.limits.connections) return undefined;
    return this.start();
  }

  /** Waits for a slot up to the pending limit; resolves not-ok at once when the pending queue is full, or when `signal` aborts. */
  admit(signal?: CancelSignal): Promise<Admission> {
    if (signal?.aborted) return Promise.resolve({ ok: false, reason: "request cancelled before admission" });
    const l = this.limits;
    if (this.queue.length === 0 && this.active < l.connections) return Promise.resolve(this.start());
    if (this.queue.length >= l.pending) {
      this.overflows++;
      return Promise.resolve({
        ok: false,
        reason: `upstream overflow: ${this.active} requests in flight (${l.connectionsFrom} ${l.connections}) and ${this.queue.length} waiting (http.http1MaxPendingRequests ${l.pending})`,
      });
    }
    return new Promise<Admission>((resolve) => {
      const onAbort = () => {
        const i = this.queue.indexOf(waiter);
        if (i >= 0) this.queue.splice(i, 1);
        resolve({ ok: false, reason: "request cancelled while waiting for an upstream slot" });
      };
      const waiter: Waiter = {
        resolve,
        detach: () => signal?.removeEventListener("abort", onAbort),
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      this.queue.push(waiter);
    });
  }

  /** Retry budget (http.maxRetries concurrent retries); false → do not retry (Envoy's retry overflow). */
  tryRetry(): RetryAdmission {
    if (this.retriesActive >= this.limits.retries) {
      this.retryOverflows++;
      return { ok: false };
    }
    this.retriesActive++;
    let released = false;
    return {
      ok: true,
      release: () => {
        if (released) return;
        released = true;
        this.retriesActive--;
      },
    };
  }

  /** Current counters. */
  stats(): LimiterStats {
    return {
      active: this.active,
      pending: this.queue.length,
      overflows: this.overflows,
      retriesActive: this.retriesActive,
      retryOverflows: this.retryOverflows,
    };
  }

  /** Takes a slot that has connection capacity, unless max requests is reached. */
  private start(): Admission {
    if (this.active >= this.limits.requests) {
      this.overflows++;
      return { ok: false, reason: `upstream overflow: ${this.active} requests in flight (http.http2MaxRequests ${this.limits.requests})` };
    }
    this.active++;
    let released = false;
    return {
      ok: true,
      release: () => {
        if (released) return;
        released = true;
        this.active--;
        this.drain();
      },
    };
  }

  private drain(): void {
    while (this.queue.length > 0 && this.active < this.limits.connections) {
      const waiter = this.queue.shift() as Waiter;
      waiter.detach();
      waiter.resolve(this.start());
    }
  }
}

/**
 * Per-worker limiters by cluster key. Invariant: one limiter per key for the key's lifetime;
 * changed settings reconfigure it in place, so requests in flight stay counted against the new
 * limits instead of being forgotten by a fresh limiter.
 */
export class LimiterRegistry {
  private readonly byKey = new Map<
    string,
    { settings: ConnectionPoolSettings | undefined; protocol: string; sig: string; limiter: RequestLimiter }
  >();

  /** The limiter of a cluster, reconfigured when its settings changed. */
  forCluster(key: string, settings: ConnectionPoolSettings | undefined, protocol: "http1" | "http2"): RequestLimiter {
    const entry = this.byKey.get(key);
    if (entry && entry.settings === settings && entry.protocol === protocol) return entry.limiter;
    const sig = `${protocol} ${JSON.stringify(settings ?? null)}`;
    if (entry) {
      if (entry.sig !== sig) entry.limiter.configure(settings, protocol);
      Object.assign(entry, { settings, protocol, sig });
      return entry.limiter;
    }
    const limiter = new RequestLimiter(settings, protocol);
    this.byKey.set(key, { settings, protocol, sig, limiter });
    return limiter;
  }

  /** Drops limiters of clusters not in `keys`; releases of their requests still work, harmlessly. */
  retain(keys: ReadonlySet<string>): void {
    for (const key of this.byKey.keys()) if (!keys.has(key)) this.byKey.delete(key);
  }
}
