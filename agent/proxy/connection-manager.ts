/**
 * Live connections: the one place a connection is registered while open, so the admin API can
 * list them, metrics see bytes of long-lived ones, policy changes can close newly denied ones,
 * and shutdown can drain. Open/close events go out on diagnostics_channel (free when unobserved),
 * which `weft tap` subscribes to through the admin API.
 */
import diagnostics from "node:diagnostics_channel";
import type { Logger } from "pino";
import { type ErrorCode, errorCode, WeftError } from "../../common/errors.js";
import type { ResponseFlag, TrafficLabels } from "../telemetry/labels.js";
import type { ProxyMetrics } from "../telemetry/metrics.js";
import type { SocketAddr } from "./request.js";

/** Channel carrying ConnectionEvent on open and close. */
export const connectionChannel = diagnostics.channel("weft:connection");

/** How a connection travels: an HBONE tunnel, same-node delivery, plain TCP, or refused before it went anywhere. */
/** How a connection is carried; "tcp": sniffed as not HTTP by the destination's HTTP server and spliced at L4. */
export type ConnectionMode = "hbone" | "same-node" | "passthrough" | "reject" | "http" | "http2" | "plaintext" | "tcp";

/** What is known about a connection, for listings, logs and policy re-checks. */
export interface ConnectionInfo {
  direction: "inbound" | "outbound";
  /** Client address as the proxy saw it (outbound: the pod; inbound: from `forwarded`, else the peer). */
  src: SocketAddr;
  /** Original destination (outbound) or CONNECT authority (inbound). */
  dst: SocketAddr;
  /** Where the bytes actually go: pod address or passthrough target. */
  target?: SocketAddr;
  /** HBONE peer (outbound: destination node's 15008; inbound: the source node). */
  hbone?: SocketAddr;
  srcWorkload?: string;
  srcIdentity?: string;
  dstWorkload?: string;
  dstIdentity?: string;
  service?: string;
  mode: ConnectionMode;
  /** Authorization outcome ("allowed by ns/p", "no ALLOW policy applies"). */
  policy?: string;
  /** "kernel": the bytes go from socket to socket in the kernel (same-node fast path), not through the proxy. */
  splice?: "kernel";
}

/** A connection as listed by the admin API. */
export interface ConnectionSnapshot extends ConnectionInfo {
  id: number;
  startedAt: string;
  ageMs: number;
  bytesReceived: number;
  bytesSent: number;
}

/** Event published on connectionChannel. */
export interface ConnectionEvent {
  type: "open" | "close";
  connection: ConnectionSnapshot;
  error?: string;
  /** The stable code of the error (WEFT_…), when the connection ended with one. */
  errorCode?: ErrorCode;
  responseFlags?: ResponseFlag;
}

/** Byte counts read from the sockets (free: the kernel side already counts). */
export type ByteCounter = () => { received: number; sent: number };

/** One tracked connection. */
export class TrackedConnection {
  private reportedReceived = 0;
  private reportedSent = 0;
  private closedAlready = false;

  constructor(
    readonly id: number,
    readonly info: ConnectionInfo,
    readonly labels: TrafficLabels,
    private readonly counter: ByteCounter,
    readonly abort: (reason: string) => void,
    private readonly manager: ConnectionManager,
    readonly started = Date.now(),
  ) {}

  /** Current state for listings. */
  snapshot(): ConnectionSnapshot {
    const { received, sent } = this.counter();
    return {
      id: this.id,
      ...this.info,
      startedAt: new Date(this.started).toISOString(),
      ageMs: Date.now() - this.started,
      bytesReceived: received,
      bytesSent: sent,
    };
  }

  /** Adds bytes seen since the last flush to the metrics. */
  flush(): void {
    const { received, sent } = this.counter();
    this.manager.metrics.bytes(this.labels, received - this.reportedReceived, sent - this.reportedSent);
    this.reportedReceived = received;
    this.reportedSent = sent;
  }

  /** Records the end: metrics, one access log line, the close event. */
  close(error?: Error, responseFlags: ResponseFlag = "-"): void {
    if (this.closedAlready) return;
    this.closedAlready = true;
    this.flush();
    this.manager.finish(this, error, responseFlags);
  }
}

/** Registry of live connections. */
export class ConnectionManager {
  private readonly live = new Map<number, TrackedConnection>();
  private nextId = 1;
  private readonly flushTimer: NodeJS.Timeout;

  constructor(
    readonly metrics: ProxyMetrics,
    private readonly log: Logger,
    flushIntervalMs = 5000,
  ) {
    // Long-lived connections report bytes as they go, not only when they end.
    this.flushTimer = setInterval(() => {
      for (const c of this.live.values()) c.flush();
    }, flushIntervalMs);
    this.flushTimer.unref();
  }

  /** Registers a new connection and counts it as opened. */
  open(info: ConnectionInfo, labels: TrafficLabels, counter: ByteCounter, abort: (reason: string) => void): TrackedConnection {
    const c = new TrackedConnection(this.nextId++, info, labels, counter, abort, this);
    this.live.set(c.id, c);
    this.metrics.connectionOpened(labels);
    if (connectionChannel.hasSubscribers) connectionChannel.publish({ type: "open", connection: c.snapshot() } satisfies ConnectionEvent);
    return c;
  }

  /** Records a connection refused before it was tracked (policy, no route): counted and logged with its code. */
  rejected(info: ConnectionInfo, labels: TrafficLabels, reason: string, responseFlags: ResponseFlag, code: ErrorCode): void {
    const c = this.open(
      info,
      labels,
      () => ({ received: 0, sent: 0 }),
      () => undefined,
    );
    c.close(new WeftError(code, reason), responseFlags);
  }

  /** Called by TrackedConnection.close. */
  finish(c: TrackedConnection, error: Error | undefined, responseFlags: ResponseFlag): void {
    this.live.delete(c.id);
    this.metrics.connectionClosed(c.labels, responseFlags);
    if (error) this.metrics.connectionFailed(c.labels.reporter, errorCode(error));
    const level = error ? "warn" : "info";
    // The access-log fields are built only when their level is logged (not per connection at warn).
    if (this.log.isLevelEnabled(level)) this.log[level](this.accessFields(c, error, responseFlags), "connection complete");
    if (connectionChannel.hasSubscribers) {
      connectionChannel.publish({
        type: "close",
        connection: c.snapshot(),
        responseFlags,
        ...(error ? { error: error.message, errorCode: errorCode(error) } : {}),
      } satisfies ConnectionEvent);
    }
  }

  /** One access-log line's fields for a finished connection (ztunnel's names where it has one). */
  private accessFields(c: TrackedConnection, error: Error | undefined, responseFlags: ResponseFlag): Record<string, unknown> {
    const snap = c.snapshot();
    return {
      direction: snap.direction,
      mode: snap.mode,
      "src.addr": snap.src.port ? `${snap.src.ip}:${snap.src.port}` : snap.src.ip,
      "src.workload": snap.srcWorkload,
      "src.identity": snap.srcIdentity,
      "dst.addr": `${snap.dst.ip}:${snap.dst.port}`,
      "dst.target": snap.target ? `${snap.target.ip}:${snap.target.port}` : undefined,
      // Outbound: the destination node's HBONE listener; inbound: the source node's connection.
      hbone_peer: snap.hbone ? `${snap.hbone.ip}:${snap.hbone.port}` : undefined,
      "dst.service": snap.service,
      "dst.workload": snap.dstWorkload,
      "dst.identity": snap.dstIdentity,
      policy: snap.policy,
      bytes_sent: snap.bytesSent,
      bytes_recv: snap.bytesReceived,
      duration_ms: snap.ageMs,
      response_flags: responseFlags,
      ...(error ? { error: error.message, error_code: errorCode(error) } : {}),
    };
  }

  /** Live connections. */
  list(): ConnectionSnapshot[] {
    return [...this.live.values()].map((c) => c.snapshot());
  }

  /** Number of live connections. */
  get size(): number {
    return this.live.size;
  }

  /** Closes every live connection `denialOf` now denies (a policy change): it returns the reason, or null to keep it. */
  closeDenied(denialOf: (info: ConnectionInfo) => string | null): number {
    let closed = 0;
    for (const c of this.live.values()) {
      const denial = denialOf(c.info);
      if (denial) {
        c.abort(denial);
        closed++;
      }
    }
    return closed;
  }

  /** Aborts everything (shutdown after the drain deadline). */
  abortAll(reason: string): void {
    for (const c of [...this.live.values()]) c.abort(reason);
  }

  /** Stops the flush timer. */
  stop(): void {
    clearInterval(this.flushTimer);
  }
}
