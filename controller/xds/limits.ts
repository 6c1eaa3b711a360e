/**
 * Limits of the controller's gRPC service: streams per node, streams still authenticating, and
 * how much a caller may send before it has proved who it is. Refusals are counted
 * (weft_controller_limit_hits_total) and logged at a bounded rate. Defaults: docs/LIMITS.md.
 */
import { Counter, Registry } from "prom-client";
import type { Logger } from "../../common/log.js";

/** Limits of the xDS/CA server. */
export interface XdsLimits {
  /** DeltaStreams one node may hold open (an agent uses one; a reconnect briefly two). */
  maxStreamsPerNode: number;
  /** Streams not yet authenticated, across all callers (each holds a TokenReview in flight). */
  maxPendingAuth: number;
  /** Messages a stream may send before its credential is checked; more refuses the stream. */
  maxPreAuthMessages: number;
  /** Refused-call log lines per minute; the rest are counted and summarised. */
  refusalLogsPerMinute: number;
}

/** Defaults. */
export const DEFAULT_XDS_LIMITS: XdsLimits = {
  maxStreamsPerNode: 4,
  maxPendingAuth: 256,
  maxPreAuthMessages: 16,
  refusalLogsPerMinute: 30,
};

/** The controller's own counters, served at /metrics on its status socket. */
export class ControllerMetrics {
  readonly registry = new Registry();
  private readonly hits = new Counter({
    name: "weft_controller_limit_hits_total",
    help: "Times a controller limit refused a call or stream (docs/LIMITS.md), by limit",
    labelNames: ["limit"],
    registers: [this.registry],
  });
  private readonly refused = new Counter({
    name: "weft_controller_refused_calls_total",
    help: "Agent calls refused (authentication, authorization, limits), by gRPC status",
    labelNames: ["code"],
    registers: [this.registry],
  });

  /** A limit was hit. */
  limitHit(limit: string): void {
    this.hits.inc({ limit });
  }

  /** A call was refused with this status name. */
  refusedCall(code: string): void {
    this.refused.inc({ code });
  }
}

/**
 * Logs refused calls at most `perMinute` times a minute; what is held back is summarised once the
 * minute is over, so a flood of bad calls cannot flood the log.
 */
export class RefusalLog {
  private windowStart = 0;
  private logged = 0;
  private suppressed = 0;

  constructor(
    private readonly log: Logger,
    private readonly perMinute: number,
    private readonly now: () => number = Date.now,
  ) {}

  /** Logs (or counts) one refusal. */
  refused(fields: Record<string, unknown>, message: string): void {
    const t = this.now();
    if (t - this.windowStart >= 60_000) {
      if (this.suppressed > 0)
        this.log.warn({ suppressed: this.suppressed }, "more agent calls were refused than logged in the last minute");
      this.windowStart = t;
      this.logged = 0;
      this.suppressed = 0;
    }
    if (this.logged < this.perMinute) {
      this.logged++;
      this.log.warn(fields, message);
    } else {
      this.suppressed++;
    }
  }
}
