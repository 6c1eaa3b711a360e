/** The proxy in the agent's own thread: one NodeProxy, no messaging. */
import diagnostics from "node:diagnostics_channel";
import type { ConnectionEvent, ConnectionSnapshot } from "./connection-manager.js";
import type { MetricsJson, ProxyHandle, ProxyPoolStats, TapEvent } from "./handle.js";
import { REQUEST_CHANNEL, type RequestEvent } from "./l7/request-event.js";
import { NodeProxy, type ProxyDeps } from "./proxy.js";

/** ProxyHandle over an in-thread NodeProxy. */
export class LocalProxyHandle implements ProxyHandle {
  readonly workers = 0;
  readonly proxy: NodeProxy;

  constructor(private readonly deps: ProxyDeps) {
    this.proxy = new NodeProxy(deps);
  }

  start(): Promise<void> {
    return this.proxy.start();
  }

  stop(drainMs?: number): Promise<void> {
    return this.proxy.stop(drainMs);
  }

  async connections(): Promise<ConnectionSnapshot[]> {
    return this.proxy.connections();
  }

  async poolStats(): Promise<ProxyPoolStats> {
    return this.proxy.poolStats();
  }

  async metrics(): Promise<MetricsJson[]> {
    return [(await this.deps.metrics.registry.getMetricsAsJSON()) as MetricsJson];
  }

  onConnectionEvent(listener: (e: TapEvent) => void): () => void {
    const fn = (m: unknown) => listener(m as ConnectionEvent);
    const req = (m: unknown) => listener({ type: "request", request: m as RequestEvent });
    diagnostics.subscribe("weft:connection", fn);
    diagnostics.subscribe(REQUEST_CHANNEL, req);
    return () => {
      diagnostics.unsubscribe("weft:connection", fn);
      diagnostics.unsubscribe(REQUEST_CHANNEL, req);
    };
  }

  setLogLevel(level: string): void {
    this.deps.log.level = level;
  }
}
