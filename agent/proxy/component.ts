/**
 * The proxy as an agent component: builds the in-thread proxy or the worker pool from the agent's
 * state watch and identity, and adds its admin endpoints.
 */
import type { Logger } from "pino";
import type { IdentitySource } from "../identity/types.js";
import type { MeshState } from "../state/updater.js";
import type { MeshView } from "../state/view.js";
import type { ReadonlyWatch } from "../state/watch.js";
import { ProxyMetrics } from "../telemetry/metrics.js";
import type { ProxyConfig } from "./context.js";
import type { ProxyHandle } from "./handle.js";
import { LocalProxyHandle } from "./local-handle.js";
import { WorkerProxyHandle } from "./worker-pool.js";

/** Proxy settings the agent passes. */
export interface ProxyComponentOptions {
  config: ProxyConfig;
  /** 0: run in the agent's thread; N: N worker threads sharing the ports. */
  workers: number;
  /** How long a shutdown lets connections finish. */
  drainMs: number;
}

/** Registers admin endpoints (structural, so the proxy does not depend on the admin server). */
export interface AdminRegistry {
  register(
    path: string,
    handler: (req: {
      method: string;
      url: URL;
      body: string;
    }) => { status?: number; json?: unknown; text?: string } | Promise<{ status?: number; json?: unknown; text?: string }>,
    opts?: { methods?: string[]; description?: string },
  ): void;
}

/** The proxy component. */
export class ProxyComponent {
  readonly name = "proxy";
  readonly handle: ProxyHandle;
  private started = false;

  constructor(
    private readonly opts: ProxyComponentOptions,
    state: ReadonlyWatch<MeshState>,
    identity: IdentitySource,
    log: Logger,
  ) {
    const view = () => state.get().view;
    const onViewChange = (l: (v: MeshView) => void) => state.subscribe((s) => l(s.view));
    const plog = log.child({ component: "proxy" });
    this.handle =
      opts.workers > 0
        ? new WorkerProxyHandle({ count: opts.workers, config: opts.config, view, onViewChange, identity, log: plog })
        : new LocalProxyHandle({ config: opts.config, view, onViewChange, identity, metrics: new ProxyMetrics(), log: plog });
  }

  async start(): Promise<void> {
    await this.handle.start();
    this.started = true;
  }

  async stop(): Promise<void> {
    if (!this.started) return;
    this.started = false;
    await this.handle.stop(this.opts.drainMs);
  }

  /** True once listening. */
  get listening(): boolean {
    return this.started;
  }

  /** /connections and /pool. */
  registerAdmin(admin: AdminRegistry): void {
    admin.register("/connections", async () => ({ json: { connections: await this.handle.connections() } }), {
      description: "live proxied connections",
    });
    admin.register("/pool", async () => ({ json: await this.handle.poolStats() }), { description: "HBONE connection pool" });
  }

  /** Section of /status. */
  async status(): Promise<object> {
    const pool = await this.handle.poolStats();
    return {
      listening: this.started,
      workers: this.handle.workers,
      outbound: this.opts.config.outbound,
      hbone: this.opts.config.hbone,
      hboneSessions: {
        outbound: pool.outbound.reduce((n, p) => n + p.sessions.length, 0),
        inbound: pool.inboundSessions,
        opened: pool.sessionsOpened,
      },
    };
  }
}
