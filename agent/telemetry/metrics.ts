/** The proxy's Prometheus metrics, with Istio's names (istio_*) so existing dashboards apply. */
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from "prom-client";
import { TRAFFIC_LABELS, type TrafficLabels } from "./labels.js";

interface RequestChildren {
  requests: { inc(): void };
  duration: { observe(v: number): void };
  requestBytes: { observe(v: number): void };
  responseBytes: { observe(v: number): void };
}

/** Counters the proxy updates per connection and per request. */
export class ProxyMetrics {
  readonly registry: Registry;
  private readonly opened: Counter<string>;
  private readonly closed: Counter<string>;
  private readonly sent: Counter<string>;
  private readonly received: Counter<string>;
  private readonly errors: Counter<string>;
  /** HBONE sessions currently pooled (gauge), for pool health. */
  readonly poolSessions: Gauge<string>;
  private readonly requests: Counter<string>;
  private readonly duration: Histogram<string>;
  private readonly requestBytes: Histogram<string>;
  private readonly responseBytes: Histogram<string>;
  /** Bound children per label set and code: prom-client hashes 25 labels on every unbound call. */
  private readonly children = new WeakMap<TrafficLabels, Map<string, RequestChildren>>();
  private readonly limitHits: Counter<string>;
  private readonly dryRuns: Counter<string>;

  constructor(registry = new Registry(), opts: { processMetrics?: boolean } = {}) {
    this.registry = registry;
    const labelNames = [...TRAFFIC_LABELS];
    this.opened = new Counter({
      name: "istio_tcp_connections_opened_total",
      help: "The total number of TCP connections opened",
      labelNames,
      registers: [registry],
    });
    this.closed = new Counter({
      name: "istio_tcp_connections_closed_total",
      help: "The total number of TCP connections closed",
      labelNames,
      registers: [registry],
    });
    this.sent = new Counter({
      name: "istio_tcp_sent_bytes_total",
      help: "The size of total bytes sent during response in case of a TCP connection",
      labelNames,
      registers: [registry],
    });
    this.received = new Counter({
      name: "istio_tcp_received_bytes_total",
      help: "The size of total bytes received during request in case of a TCP connection",
      labelNames,
      registers: [registry],
    });
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
    const requestLabels = [...TRAFFIC_LABELS, "response_code", "grpc_response_status"];
    this.requests = new Counter({
      name: "istio_requests_total",
      help: "Total number of requests",
      labelNames: requestLabels,
      registers: [registry],
    });
    // Istio's buckets, so histogram_quantile over weft and Istio data agrees.
    this.duration = new Histogram({
      name: "istio_request_duration_milliseconds",
      help: "Duration of requests in milliseconds",
      labelNames: requestLabels,
      buckets: [1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000, 600000, 1800000, 3600000],
      registers: [registry],
    });
    const sizeBuckets = [1, 10, 100, 1000, 10000, 100000, 1000000, 10000000, 100000000];
    this.requestBytes = new Histogram({
      name: "istio_request_bytes",
      help: "Request body sizes in bytes",
      labelNames: requestLabels,
      buckets: sizeBuckets,
      registers: [registry],
    });
    this.responseBytes = new Histogram({
      name: "istio_response_bytes",
      help: "Response body sizes in bytes",
      labelNames: requestLabels,
      buckets: sizeBuckets,
      registers: [registry],
    });
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
    if (opts.processMetrics) collectDefaultMetrics({ register: registry });
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

  /** A connection closed. */
  connectionClosed(labels: TrafficLabels): void {
    this.closed.inc(labels);
  }

  /** Records one finished HTTP request (Istio's four request metrics). */
  request(
    labels: TrafficLabels,
    responseCode: number,
    grpcStatus: string,
    durationMs: number,
    requestBytes: number,
    responseBytes: number,
  ): void {
    let byCode = this.children.get(labels);
    if (!byCode) {
      byCode = new Map();
      this.children.set(labels, byCode);
    }
    const key = `${responseCode}|${grpcStatus}`;
    let c = byCode.get(key);
    if (!c) {
      const l = { ...labels, response_code: String(responseCode), grpc_response_status: grpcStatus };
      c = {
        requests: this.requests.labels(l),
        duration: this.duration.labels(l),
        requestBytes: this.requestBytes.labels(l),
        responseBytes: this.responseBytes.labels(l),
      };
      byCode.set(key, c);
    }
    c.requests.inc();
    c.duration.observe(durationMs);
    c.requestBytes.observe(requestBytes);
    c.responseBytes.observe(responseBytes);
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
