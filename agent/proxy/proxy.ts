/**
 * The node proxy: HBONE inbound (15008) and outbound capture (15001) over one shared context.
 * It reads the mesh only through an immutable view and keeps no global state, so several
 * instances can run side by side (one per worker thread).
 */

import type { Logger } from "pino";
import { errorMessage } from "../../common/errors.js";
import { SocketSplicer } from "../../native/sock-splice.js";
import type { IdentitySource } from "../identity/types.js";
import type { MeshView } from "../state/view.js";
import type { ProxyMetrics } from "../telemetry/metrics.js";
import { authorize } from "./authz.js";
import { ConnectionManager, type ConnectionSnapshot } from "./connection-manager.js";
import type { ProxyConfig, ProxyContext } from "./context.js";
import { hboneConnector } from "./hbone-connect.js";
import { InboundServer } from "./inbound.js";
import { PlaintextInbound } from "./inbound-plain.js";
import { checkInbound, checkPlaintext } from "./inbound-policy.js";
import { BalancerRegistry } from "./l7/balancer.js";
import { UpstreamClients } from "./l7/clients.js";
import { HttpProxy } from "./l7/http-proxy.js";
import { LimiterRegistry } from "./l7/limiter.js";
import { OutlierRegistry } from "./l7/outlier.js";
import { recheckSameNode } from "./l7/tunnel.js";
import { OutboundListener } from "./outbound.js";
import { HbonePool, type PoolStats } from "./pool.js";
import { type EndpointPicker, randomPicker } from "./request.js";
import { ContextCache } from "./tls.js";

/** What the proxy is built from. */
export interface ProxyDeps {
  config: ProxyConfig;
  view: () => MeshView;
  /** Subscribes to view changes; returns an unsubscribe function. */
  onViewChange: (listener: (view: MeshView) => void) => () => void;
  identity: IdentitySource;
  metrics: ProxyMetrics;
  log: Logger;
  pick?: EndpointPicker;
}

/** A running node proxy. */
export class NodeProxy {
  readonly ctx: ProxyContext;
  private readonly inbound: InboundServer;
  private readonly outbound: OutboundListener;
  private readonly plaintext?: PlaintextInbound;
  private readonly http: HttpProxy;
  private readonly clients: UpstreamClients;
  private unsubscribe?: () => void;
  private readonly poolGauge: NodeJS.Timeout;

  constructor(deps: ProxyDeps) {
    const contexts = new ContextCache();
    const connections = new ConnectionManager(deps.metrics, deps.log.child({ scope: "access" }));
    const base = {
      config: deps.config,
      view: deps.view,
      identity: deps.identity,
      contexts,
      connections,
      metrics: deps.metrics,
      log: deps.log,
      pick: deps.pick ?? randomPicker,
    };
    const pool = new HbonePool(hboneConnector(base), deps.config.pool);
    this.ctx = { ...base, pool };
    this.inbound = new InboundServer(this.ctx);
    this.clients = new UpstreamClients(this.ctx);
    this.http = new HttpProxy({
      ctx: this.ctx,
      clients: this.clients,
      balancers: new BalancerRegistry(),
      outliers: new OutlierRegistry(),
      limiters: new LimiterRegistry(),
    });
    this.outbound = new OutboundListener(this.ctx, this.http);
    if (deps.config.plaintext) this.plaintext = new PlaintextInbound(this.ctx, deps.config.plaintext);
    this.unsubscribe = deps.onViewChange((view) => {
      this.recheck(view);
      // Keys of identities this node no longer runs leave memory with their contexts.
      contexts.retain(new Set(view.localWorkloads().flatMap((w) => (w.enrolled ? [w.identity] : []))));
    });
    this.poolGauge = setInterval(() => deps.metrics.poolSessions.set(pool.sessionCount), 1000);
    this.poolGauge.unref();
  }

  /** Starts inbound first, so this node accepts tunnels before it sends any. */
  async start(): Promise<void> {
    const tracing = this.ctx.config.tracing;
    if (tracing) {
      // The OpenTelemetry SDK and its exporter cost ~6 MB of RSS per process: loaded only when
      // tracing is configured, before any listener can take a request.
      const { ProxyTracer } = await import("../telemetry/tracing.js");
      this.ctx.tracer = new ProxyTracer(tracing, this.ctx.view().nodeName);
    }
    this.openSplicer();
    await this.inbound.start();
    await this.plaintext?.start();
    await this.outbound.start();
  }

  /** Loads the kernel splice when configured; without it (old kernel, no CAP_BPF) the proxy copies same-node bytes itself. */
  private openSplicer(): void {
    const object = this.ctx.config.kernelSplice;
    if (!object || this.ctx.splicer) return;
    try {
      this.ctx.splicer = SocketSplicer.open(object);
      this.ctx.log.info({ object }, "same-node connections are spliced in the kernel");
    } catch (e) {
      this.ctx.log.warn({ object, err: errorMessage(e) }, "kernel splice unavailable: the proxy copies same-node connections itself");
    }
  }

  /** Policy changed: closes live connections the new policy denies. */
  recheck(view: MeshView): number {
    const closed = this.ctx.connections.closeDenied((info) => {
      if (info.mode === "plaintext" && info.direction === "inbound" && info.target) {
        // No identity to re-check, but STRICT mTLS or an address rule can now refuse it.
        const d = checkPlaintext(view, { sourceIp: info.src.ip, target: info.target });
        return d.ok ? null : `policy changed: ${d.reason}`;
      }
      if (!info.srcIdentity || !info.target) return null;
      if (info.direction !== "inbound" && info.mode !== "same-node") return null;
      // Tunnels the destination's HTTP server handles are checked request by request; spliced
      // ones cannot be, so a policy that now needs HTTP attributes closes them (they reconnect).
      const http = info.mode === "http";
      const d = checkInbound(view, {
        sourceIdentity: info.srcIdentity,
        sourceIp: info.src.ip,
        target: info.target,
        httpCapable: true,
        traced: this.ctx.tracer !== undefined,
      });
      if (!d.ok) return `policy changed: ${d.reason}`;
      if (info.mode === "tcp") {
        // Spliced after sniffing found no HTTP: it holds what spliceTcp required, the L4 decision
        // (HTTP parts fail closed), and no token or rate-limit duty it could not meet.
        if (d.http?.jwt || d.http?.rateLimit) return "policy changed: its bytes are not HTTP and tokens or rate limits now apply";
        const l4 = authorize(view.authorizationPoliciesFor(d.destination), {
          sourceIdentity: info.srcIdentity,
          sourceIp: info.src.ip,
          destinationIp: info.target.ip,
          destinationPort: info.target.port,
        });
        return l4.allowed ? null : `policy changed: ${l4.reason}`;
      }
      return d.http && !http ? "policy changed: it now needs HTTP attributes, checked by the destination's HTTP server" : null;
    });
    const direct = recheckSameNode(view, this.ctx.tracer !== undefined);
    if (closed + direct > 0)
      this.ctx.log.info({ closed: closed + direct, version: view.version }, "closed connections newly denied by policy");
    return closed + direct;
  }

  /** Where HBONE is actually listening. */
  hboneAddress(): { ip: string; port: number } | null {
    return this.inbound.address();
  }

  /** Live connections. */
  connections(): ConnectionSnapshot[] {
    return this.ctx.connections.list();
  }

  /** HBONE pool state. */
  poolStats(): { outbound: PoolStats[]; sessionsOpened: number; inboundSessions: number } {
    return { outbound: this.ctx.pool.stats(), sessionsOpened: this.ctx.pool.sessionsOpened, inboundSessions: this.inbound.sessionCount };
  }

  /**
   * Stops accepting at once (the listening sockets close; with SO_REUSEPORT a successor's
   * listeners take the new connections), then drains: connections already accepted, long-lived
   * ones included, keep working, on the same HBONE pool, until they close or drainMs passes;
   * inbound HBONE sessions get GOAWAY, so peers open new streams elsewhere. Whatever is left at
   * the deadline is aborted.
   */
  async stop(drainMs = 5000): Promise<void> {
    this.unsubscribe?.();
    clearInterval(this.poolGauge);
    this.outbound.close();
    this.plaintext?.close();
    this.http.drain();
    const inbound = this.inbound.close(true);
    const until = Date.now() + drainMs;
    while (this.ctx.connections.size > 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
    this.ctx.connections.abortAll("proxy shutting down");
    this.http.close();
    this.inbound.closeHttp();
    void this.ctx.tracer?.shutdown();
    // Nothing is left to finish: sessions close as soon as their (aborted) streams are gone.
    const settled = Promise.all([inbound, this.ctx.pool.close(true)]);
    await Promise.race([settled, new Promise((r) => setTimeout(r, 2000).unref())]);
    this.clients.close();
    this.ctx.connections.stop();
    this.ctx.splicer?.close();
  }
}
