/**
 * What the agent holds of its proxy, whether it runs in the agent's own thread or as N worker
 * threads: the admin API, metrics and shutdown go through this and never care which.
 */
import type { MetricObjectWithValues, MetricValue } from "prom-client";
import type { ConnectionEvent, ConnectionSnapshot } from "./connection-manager.js";
import type { RequestEvent } from "./l7/request-event.js";
import type { PoolStats } from "./pool.js";

/** Pool state across all workers. */
export interface ProxyPoolStats {
  outbound: PoolStats[];
  sessionsOpened: number;
  inboundSessions: number;
}

/** Prometheus metrics as prom-client's JSON form (aggregatable across workers). */
export type MetricsJson = MetricObjectWithValues<MetricValue<string>>[];

/** What `weft tap` streams: connection open/close, and finished HTTP requests. */
export type TapEvent = ConnectionEvent | { type: "request"; request: RequestEvent };

/** The agent's handle on its proxy. */
export interface ProxyHandle {
  /** Number of proxy threads (0 = runs in the agent's thread). */
  readonly workers: number;
  start(): Promise<void>;
  /** Drains for up to drainMs, then aborts what is left. */
  stop(drainMs?: number): Promise<void>;
  connections(): Promise<ConnectionSnapshot[]>;
  poolStats(): Promise<ProxyPoolStats>;
  /** Proxy metrics, one entry per worker's registry (aggregate with AggregatorRegistry). */
  metrics(): Promise<MetricsJson[]>;
  /** Connection open/close and request events while subscribed (for `weft tap`). */
  onConnectionEvent(listener: (e: TapEvent) => void): () => void;
  setLogLevel(level: string): void;
}
