/** The proxy's Prometheus metrics, with Istio's names (istio_*) so existing dashboards apply. */
import { Counter, collectDefaultMetrics, Gauge, Registry } from "prom-client";
import { LabelCounter } from "./label-counter.js";
import type { TrafficLabels } from "./labels.js";
import { RequestMetrics } from "./request-metrics.js";

/** Counters the proxy updates per connection and per request. */
export class ProxyMetrics {
  readonly registry: Registry;
  private readonly opened: LabelCounter;
  private readonly closed: LabelCounter;
  private readonly sent: LabelCounter;
  private readonly received: LabelCounter;
  /** A connection's label set with the response flags it closed with, made once per pair. */
  private readonly withFlags = new WeakMap<TrafficLabels, Map<string, TrafficLabels>>();
  private readonly errors: Counter<string>;
  /** HBONE sessions currently pooled (gauge), for pool health. */
  readonly poolSessions: Gauge<string>;
  /** Istio's four request metrics (one record() per finished HTTP request). */
  readonly requests: RequestMetrics;
  private readonly limitHits: Counter<string>;
  private readonly dryRuns: Counter<string>;
  private readonly sameNode: Counter<string>;

  constructor(registry = new Registry(), opts: { processMetrics?: boolean } = {}) {
    this.registry = registry;
    // Istio's TCP metrics, with its standard traffic labels (labels.ts).
    this.opened = new LabelCounter(registry, "istio_tcp_connections_opened_total", "The total number of TCP connections opened");
    this.closed = new LabelCounter(registry, "istio_tcp_connections_closed_total", "The total number of TCP connections closed");
    this.sent = new LabelCounter(
      registry,
      "istio_tcp_sent_bytes_total",
      "The size of total bytes sent during response in case of a TCP connection",
    );
    this.received = new LabelCounter(
      registry,
      "istio_tcp_received_bytes_total",
      "The size of total bytes received during request in case of a TCP connection",
    );
    this.errors = new Counter({
      name: "weft_connection_errors_total",
      help: "Connections refused or ended by an error, by reporter and stable error code (WEFT_…)",
      labelNames: ["reporter", "code"],
      registers: [registry],
    });
    this.poolSessions = new Gauge({
      name: "weft_hbone_pool_sessions",
      help: "Pooled HBONE (mTLS HTTP/2) sessions open",
      registers: [registry],
    });
    this.requests = new RequestMetrics(registry);
    this.limitHits = new Counter({
      name: "weft_limit_hits_total",
      help: "Times a proxy limit refused or cut something (docs/LIMITS.md), by limit",
      labelNames: ["limit"],
      registers: [registry],
    });
    this.dryRuns = new Counter({
      name: "weft_authz_dry_run_total",
      help: "Would-be outcomes of dry-run (istio.io/dry-run) AuthorizationPolicies, never enforced, by policy and result",
      labelNames: ["policy", "result"],
      registers: [registry],
    });
    this.sameNode = new Counter({
      name: "weft_same_node_connections_total",
      help: "Same-node connections with L4 policy only, by who carried their bytes: kernel (the sockhash splice) or proxy (copied: the splice is off or could not take the connection)",
      labelNames: ["carrier"],
      registers: [registry],
    });
    if (opts.processMetrics) collectDefaultMetrics({ register: registry });
  }

  /** A same-node connection started: carried by the kernel splice or copied by the proxy. */
  sameNodeCarried(carrier: "kernel" | "proxy"): void {
    this.sameNode.inc({ carrier });
  }

  /** A limit was hit (a connection, stream or handshake refused or cut). */
  limitHit(limit: string): void {
    this.limitHits.inc({ limit });
  }

  /** A dry-run policy would have allowed or denied a request or connection. */
  dryRun(policy: string, result: string): void {
    this.dryRuns.inc({ policy, result });
  }

  /** A connection was opened. */
  connectionOpened(labels: TrafficLabels): void {
    this.opened.inc(labels);
  }

  /** A connection closed, with these response flags (they replace the ones it opened with). */
  connectionClosed(labels: TrafficLabels, responseFlags: string): void {
    if (labels.response_flags === responseFlags) {
      this.closed.inc(labels);
      return;
    }
    let byFlags = this.withFlags.get(labels);
    if (!byFlags) {
      byFlags = new Map();
      this.withFlags.set(labels, byFlags);
    }
    let flagged = byFlags.get(responseFlags);
    if (!flagged) {
      flagged = Object.freeze({ ...labels, response_flags: responseFlags });
      byFlags.set(responseFlags, flagged);
    }
    this.closed.inc(flagged);
  }

  /** A connection was refused or ended by an error with this code. */
  connectionFailed(reporter: string, code: string): void {
    this.errors.inc({ reporter, code });
  }

  /** Adds bytes: received = client→server (request), sent = server→client (response). */
  bytes(labels: TrafficLabels, received: number, sent: number): void {
    if (received > 0) this.received.inc(labels, received);
    if (sent > 0) this.sent.inc(labels, sent);
  }
}
