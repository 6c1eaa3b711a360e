/**
 * The agent's composition root. It builds the parts and wires them, in one place:
 *   config source (xDS client, or local YAML) → state updater (the only writer) → mesh state watch
 *   mesh state watch → identity manager (certificates for local service accounts)
 *   every part → admin API (127.0.0.1:15000 and a unix socket)
 * Later parts (redirect, proxy, telemetry) are AgentComponents added in `components()`: each
 * gets the same dependency bundle, starts in order, stops in reverse.
 */

import { X509Certificate } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { getHeapStatistics } from "node:v8";
import { Counter, collectDefaultMetrics, Gauge, Registry } from "prom-client";
import { AdminServer } from "../common/admin-server.js";
import { errorMessage } from "../common/errors.js";
import { createLogger, LOG_LEVELS, type Logger } from "../common/log.js";
import { fingerprint256, splitPemCertificates } from "../common/pki/x509.js";
import { PORT_HBONE, PORT_INBOUND_PLAINTEXT, PORT_OUTBOUND, PROXY_MARK } from "../controller/api/constants.js";
import { CertificateAuthority, loadStateDirCa } from "../controller/embedded.js";
import { registerDebugEndpoints } from "./admin-debug.js";
import { CaptureComponent } from "./capture/component.js";
import type { AgentConfig } from "./config.js";
import { type CertificateIssuer, GrpcIssuer, LocalIssuer } from "./identity/issuer.js";
import { IdentityManager } from "./identity/manager.js";
import { awaitServing, handover } from "./lifecycle/components.js";
import { AgentPidFile, type AgentProcess } from "./lifecycle/handover.js";
import { enableRequestMigration } from "./lifecycle/migrate.js";
import { StatePersister } from "./lifecycle/persister.js";
import { type Restored, restoreState } from "./lifecycle/restore.js";
import { ProxyComponent } from "./proxy/component.js";
import { DEFAULT_PROXY_TUNING } from "./proxy/context.js";
import { DEFAULT_POOL_OPTIONS } from "./proxy/pool.js";
import { defaultObjectDir, redirectConfig } from "./redirect/defaults.js";
import { StateUpdater } from "./state/updater.js";
import { type Readiness, renderMetrics, serveMetrics, serveReadiness } from "./telemetry/servers.js";
import { VERSION } from "./version.js";
import type { ControllerEndpoint } from "./xds/channel.js";
import { XdsClient } from "./xds/client.js";
import { LocalConfigSource } from "./xds/local.js";

/** A part of the agent with a lifecycle. */
export interface AgentComponent {
  readonly name: string;
  start(): Promise<void> | void;
  stop(): Promise<void> | void;
  /** Extra admin endpoints. */
  registerAdmin?(admin: AdminServer): void;
  /** Its section of /status (may be async). */
  status?(): unknown;
}

/** Summary of a root certificate for /certs. */
function describeRoot(pem: string, signing: string | undefined): object {
  const c = new X509Certificate(pem);
  const fp = fingerprint256(c);
  return {
    subject: c.subject,
    sha256: fp,
    notBefore: new Date(c.validFrom).toISOString(),
    notAfter: new Date(c.validTo).toISOString(),
    signing: fp === signing,
  };
}

/** The running agent. */
export class AgentApp {
  readonly log: Logger;
  readonly updater: StateUpdater;
  readonly identity: IdentityManager;
  readonly admin: AdminServer;
  private readonly parts: AgentComponent[];
  private readonly started: AgentComponent[] = [];
  private readonly startedAt = new Date();
  /** Where the admin API listens (TCP), once started. */
  adminPort = 0;
  xds: XdsClient | undefined;
  local: LocalConfigSource | undefined;
  /** The data plane, when configured. */
  capture: CaptureComponent | undefined;
  proxy: ProxyComponent | undefined;
  /** Agent-level metrics (process, state); the proxy's are added at scrape time. */
  readonly registry = new Registry();
  /** Writes the accepted config and certificates to the state directory (null: not persisting). */
  readonly persister: StatePersister | null;
  /** Names this process as the node's agent (/run/weft/agent-<node>.pid). */
  readonly pidFile: AgentPidFile;
  /** The agent this one takes over from, found at start. */
  private predecessor: AgentProcess | null = null;
  /** What the state directory gave at start (for /status). */
  private restored: Restored = { problems: [] };

  constructor(
    readonly config: AgentConfig,
    log?: Logger,
  ) {
    this.log = log ?? createLogger({ name: "weft-agent", level: config.logLevel });
    this.updater = new StateUpdater(config.node, config.translate);
    this.admin = new AdminServer(this.log);
    let issuer: CertificateIssuer;
    let localCa: CertificateAuthority | undefined;
    if (config.source.kind === "controller") {
      const endpoint = this.endpoint();
      issuer = new GrpcIssuer(endpoint);
      this.xds = new XdsClient({
        endpoint,
        node: config.node,
        agentVersion: VERSION,
        updater: this.updater,
        log: this.log,
        backoffInitialMs: config.backoffInitialMs,
        backoffMaxMs: config.backoffMaxMs,
      });
    } else {
      const { material, created } = loadStateDirCa(config.source.caDir, config.translate.trustDomain);
      if (created)
        this.log.info(
          { dir: config.source.caDir },
          "local-file mode: generated a local root CA (share this directory between agents that must trust each other)",
        );
      localCa = new CertificateAuthority(material, {
        trustDomain: config.translate.trustDomain,
        defaultTtlMs: 24 * 3600_000,
        maxTtlMs: 30 * 24 * 3600_000,
      });
      issuer = new LocalIssuer(localCa);
      const ca = localCa;
      this.local = new LocalConfigSource({
        path: config.source.path,
        node: config.node,
        translate: config.translate,
        updater: this.updater,
        log: this.log,
        bundle: () => ca.trustBundle(),
      });
    }
    this.identity = new IdentityManager({
      issuer,
      state: this.updater.state,
      log: this.log,
      ttlSeconds: config.certTtlSeconds,
      rotationSpreadMs: config.rotationSpreadMs,
    });
    this.pidFile = new AgentPidFile(config.node);
    this.persister = config.stateDir
      ? new StatePersister({ dir: config.stateDir, node: config.node, updater: this.updater, identity: this.identity, log: this.log })
      : null;
    this.parts = this.components();
  }

  /** Loads what the state directory holds (lifecycle/restore.ts). */
  private restore(): void {
    const dir = this.config.stateDir;
    if (dir) this.restored = restoreState({ dir, node: this.config.node, updater: this.updater, identity: this.identity, log: this.log });
  }

  private endpoint(): ControllerEndpoint {
    const src = this.config.source;
    if (src.kind !== "controller") throw new Error("not in controller mode");
    return {
      target: src.target,
      ...(src.serverName ? { serverName: src.serverName } : {}),
      tokenFile: src.tokenFile,
      // The configured roots plus the pushed bundle: a root rotation never locks the agent out.
      roots: () => {
        let fromFile: string[] = [];
        try {
          fromFile = splitPemCertificates(readFileSync(src.caFile, "utf8"));
        } catch (e) {
          this.log.warn({ err: errorMessage(e), caFile: src.caFile }, "cannot read --ca-file; using the pushed trust bundle only");
        }
        return [...new Set([...fromFile, ...(this.updater.state.get().trustBundle?.rootsPem ?? [])])];
      },
    };
  }

  /** The agent's parts, in start order. Add new components here. */
  private components(): AgentComponent[] {
    const configSource: AgentComponent = this.xds
      ? {
          name: "xds",
          start: () => (this.xds as XdsClient).start(),
          stop: () => (this.xds as XdsClient).stop(),
          status: () => (this.xds as XdsClient).status(),
        }
      : {
          name: "local-config",
          start: () => (this.local as LocalConfigSource).start(),
          stop: () => (this.local as LocalConfigSource).stop(),
          status: () => (this.local as LocalConfigSource).status(),
        };
    const identity: AgentComponent = {
      name: "identity",
      start: () => this.identity.start(),
      stop: () => this.identity.stop(),
      status: () => this.identity.status(),
    };
    const persist: AgentComponent[] = this.persister
      ? [
          {
            name: "persist",
            start: () => this.persister?.start(),
            stop: () => this.persister?.stop(),
            status: () => this.persister?.status() ?? {},
          },
        ]
      : [];
    // Only the data plane is one per node; control-plane-only agents (debugging) may run side by side.
    return [configSource, identity, ...persist, ...this.dataPlane()];
  }

  /**
   * Capture, proxy and telemetry. The proxy listens before capture attaches, so a captured
   * connection always finds it; capture reconciles only once state is synced.
   */
  private dataPlane(): AgentComponent[] {
    const dp = this.config.dataPlane;
    if (!dp) return [];
    const separateHbone = dp.proxyAddress !== dp.hboneAddress && dp.hboneAddress !== "0.0.0.0";
    const proxy = new ProxyComponent(
      {
        config: {
          outbound: { ip: dp.proxyAddress, port: PORT_OUTBOUND },
          hbone: { ip: dp.hboneAddress, port: PORT_HBONE },
          // With capture on, the node's tproxy rules steer pod-addressed traffic here.
          ...(dp.capture ? { plaintext: { ip: dp.proxyAddress, port: PORT_INBOUND_PLAINTEXT }, transparent: true } : {}),
          // On the proxy address, unless the HBONE listener already holds it (same or wildcard address).
          ...(dp.capture && separateHbone ? { hboneCaptured: { ip: dp.proxyAddress, port: PORT_HBONE } } : {}),
          // Always shared: a successor agent binds the same ports while this one drains.
          reusePort: true,
          pool: DEFAULT_POOL_OPTIONS,
          ...DEFAULT_PROXY_TUNING,
          limits: dp.limits,
          ...(dp.tracing ? { tracing: dp.tracing } : {}),
          // Needs capture: the spliced sockets' other ends are captured pods.
          ...(dp.capture && dp.sameNodeSplice === "kernel" ? { kernelSplice: join(defaultObjectDir(), "splice.o") } : {}),
        },
        workers: dp.workers,
        drainMs: dp.drainMs,
      },
      this.updater.state,
      this.identity,
      this.log,
    );
    this.proxy = proxy;
    const parts: AgentComponent[] = [
      awaitServing({ predecessor: () => this.predecessor, reasons: () => this.servingReasons(), log: this.log }),
      {
        name: "proxy",
        start: () => {
          // Set before binding, so this agent's own listeners hand their queues over when it drains.
          enableRequestMigration(this.log);
          return proxy.start();
        },
        stop: () => proxy.stop(),
        status: () => proxy.status(),
        registerAdmin: (a) => proxy.registerAdmin(a),
      },
      handover({ pidFile: this.pidFile, predecessor: () => this.predecessor, restored: () => this.restored, log: this.log }),
    ];
    if (dp.capture) {
      const c = dp.capture;
      const capture = new CaptureComponent(
        {
          redirect: redirectConfig({
            podCgroupParent: c.podCgroupParent,
            proxyCgroup: c.proxyCgroup,
            proxyAddress: dp.proxyAddress,
            pinDir: c.pinDir,
            excluded: c.excluded,
            proxyMark: PROXY_MARK,
          }),
          layout: c.layout,
          nodeRules: { hbonePort: separateHbone ? PORT_HBONE : null },
        },
        this.updater.state,
        this.log,
      );
      this.capture = capture;
      parts.push({ name: "redirect", start: () => capture.start(), stop: () => capture.stop(), status: () => capture.status() });
    }
    parts.push(this.telemetry(dp.metrics, dp.readiness));
    return parts;
  }

  /** Metrics (15020) and readiness (15021) servers. */
  private telemetry(metrics: { host: string; port: number } | null, readiness: { host: string; port: number } | null): AgentComponent {
    collectDefaultMetrics({ register: this.registry, prefix: "weft_agent_" });
    const state = () => this.updater.state.get();
    new Gauge({
      name: "weft_agent_workloads",
      help: "Workloads in the agent's state",
      registers: [this.registry],
      collect() {
        this.set(state().data.workloads.length);
      },
    });
    const ready = () => (this.readiness().ready ? 1 : 0);
    new Gauge({
      name: "weft_agent_ready",
      help: "1 when the agent is ready (see /healthz/ready)",
      registers: [this.registry],
      collect() {
        this.set(ready());
      },
    });
    this.pushes = new Counter({ name: "weft_agent_state_updates_total", help: "Mesh state snapshots applied", registers: [this.registry] });
    const off = this.updater.state.subscribe(() => this.pushes?.inc());
    const servers: { close(): void }[] = [];
    const collect = async () => renderMetrics(this.registry, (await this.proxy?.handle.metrics()) ?? []);
    return {
      name: "telemetry",
      // Also on the admin API, so `weft graph` reads every node's metrics through its unix socket.
      registerAdmin: (admin) =>
        admin.register("/stats/prometheus", async () => ({ text: await collect() }), { description: "Prometheus metrics (as 15020)" }),
      start: async () => {
        if (metrics) servers.push(await serveMetrics(metrics.host, metrics.port, collect));
        if (readiness) servers.push(await serveReadiness(readiness.host, readiness.port, () => this.readiness()));
      },
      stop: () => {
        off();
        for (const s of servers.splice(0)) s.close();
      },
    };
  }

  private pushes: Counter | undefined;

  /**
   * What keeps the agent from serving: config not synced (from the controller or the state
   * directory), or an enrolled local identity without a certificate that is still valid. A
   * certificate whose renewal fails but that has not expired still serves (a controller outage
   * changes nothing while certificates are valid).
   */
  private servingReasons(): string[] {
    const reasons: string[] = [];
    const s = this.updater.state.get();
    if (!s.synced) reasons.push(this.xds ? "mesh config not yet synced from the controller" : "mesh config not yet loaded");
    const certs = new Map(this.identity.status().map((c) => [c.identity, c]));
    for (const w of s.view.localWorkloads()) {
      if (!w.enrolled || this.identity.cached(w.identity)) continue;
      const c = certs.get(w.identity);
      reasons.push(`no valid certificate for ${w.identity} (${c?.state ?? "not requested"}${c?.lastError ? `: ${c.lastError}` : ""})`);
    }
    return reasons;
  }

  /** Ready only when config is synced, certificates are held, the proxy listens and capture is attached. */
  readiness(): Readiness {
    const reasons = this.servingReasons();
    if (this.proxy && !this.proxy.listening) reasons.push("proxy not listening");
    if (this.capture && !this.capture.attached) reasons.push("eBPF capture programs not attached");
    return { ready: reasons.length === 0, reasons: [...new Set(reasons)] };
  }

  /** Starts every part, then the admin API. A part that fails to start stops the ones before it. */
  async start(): Promise<void> {
    this.predecessor = this.config.dataPlane ? this.pidFile.holder() : null;
    if (this.predecessor) this.log.info({ predecessor: this.predecessor.pid }, "another agent runs on this node: taking over from it");
    this.restore();
    this.registerAdmin();
    for (const p of this.parts) {
      p.registerAdmin?.(this.admin);
      try {
        await p.start();
      } catch (e) {
        this.log.error({ component: p.name, err: errorMessage(e) }, "component failed to start");
        await this.stop();
        throw e;
      }
      this.started.push(p);
    }
    if (this.config.adminAddress)
      this.adminPort = (await this.admin.listenTcp(this.config.adminAddress.host, this.config.adminAddress.port)).port;
    if (this.config.adminSocket) await this.admin.listenUnix(this.config.adminSocket);
    this.log.info(
      { node: this.config.node, source: this.config.source.kind, admin: this.config.adminSocket, adminPort: this.adminPort },
      "agent started",
    );
  }

  /**
   * Stops (SIGTERM, or a successor's handover): first everything one agent per node holds, in
   * reverse start order (capture's lock, metrics and readiness ports, certificates, the xDS stream,
   * the admin API, the pidfile: a successor waits for that), then the proxy, which stops
   * accepting and drains its connections for up to --drain. The last state stays in effect (pins
   * stay) until the process exits.
   */
  async stop(): Promise<void> {
    const parts = this.started.splice(0).reverse();
    const stopPart = async (p: AgentComponent) => {
      try {
        await p.stop();
      } catch (e) {
        this.log.error({ component: p.name, err: errorMessage(e) }, "component failed to stop cleanly");
      }
    };
    const proxy = parts.find((p) => p.name === "proxy");
    const handover = parts.find((p) => p.name === "handover");
    for (const p of parts) if (p !== proxy && p !== handover) await stopPart(p);
    await this.admin.close();
    if (handover) await stopPart(handover);
    if (proxy) {
      this.log.info({ drainMs: this.config.dataPlane?.drainMs }, "released the node; draining the proxy's connections");
      await stopPart(proxy);
    }
  }

  private registerAdmin(): void {
    registerDebugEndpoints(this.admin, this);
    this.admin.register(
      "/memory",
      (req) => {
        // ?gc=1 collects first (when run with --expose-gc), so the numbers show what is retained.
        const g = (globalThis as { gc?: () => void }).gc;
        if (req.url.searchParams.get("gc") === "1" && g) g();
        const h = getHeapStatistics();
        return {
          json: { ...process.memoryUsage(), heapLimit: h.heap_size_limit, mallocedMemory: h.malloced_memory, gcExposed: Boolean(g) },
        };
      },
      { description: "process memory (RSS, V8 heap, external, array buffers); ?gc=1 to collect first when --expose-gc" },
    );
    this.admin.register(
      "/logging",
      (req) => {
        const level = req.url.searchParams.get("level");
        if (req.method === "POST" && level) {
          if (!(LOG_LEVELS as readonly string[]).includes(level))
            return { status: 400, json: { error: `unknown level '${level}': use ${LOG_LEVELS.join(", ")}` } };
          this.log.level = level;
          this.proxy?.handle.setLogLevel(level);
          this.log.warn({ level }, "log level changed");
        }
        return { json: { level: this.log.level } };
      },
      { methods: ["GET", "POST"], description: "GET the log level; POST ?level=debug to change it" },
    );
    this.admin.register("/healthz", () => ({ text: "ok\n" }), { description: "liveness" });
    // /ready means what 15021's /healthz/ready means (one readiness); /synced is the narrower fact.
    this.admin.register(
      "/ready",
      () => {
        const r = this.readiness();
        return r.ready ? { text: "ready\n" } : { status: 503, text: `not ready:\n${r.reasons.map((x) => `- ${x}\n`).join("")}` };
      },
      { description: "200 when ready (as 15021 /healthz/ready: config synced, certificates held, proxy listening, capture attached)" },
    );
    this.admin.register(
      "/synced",
      () => (this.updater.state.get().synced ? { text: "synced\n" } : { status: 503, text: "not synced yet\n" }),
      { description: "200 once the first full mesh state has arrived" },
    );
    this.admin.register("/config_dump", () => ({ json: this.updater.state.get().data }), {
      description: "the mesh state this agent holds (MeshSnapshotData)",
    });
    this.admin.register(
      "/certs",
      () => {
        const bundle = this.updater.state.get().trustBundle;
        const roots = this.identity.trustBundle();
        return {
          json: { certificates: this.identity.status(), trustBundle: roots.map((pem) => describeRoot(pem, bundle?.signingRootSha256)) },
        };
      },
      { description: "workload certificates (serial, expiry, renewal) and the trust bundle" },
    );
    this.admin.register(
      "/status",
      async () => {
        const s = this.updater.state.get();
        const d = s.data;
        return {
          json: {
            node: this.config.node,
            pid: process.pid,
            version: VERSION,
            uptimeSeconds: Math.round((Date.now() - this.startedAt.getTime()) / 1000),
            source: this.config.source.kind,
            synced: s.synced,
            revision: s.revision,
            appliedVersions: this.updater.appliedVersions(),
            counts: {
              workloads: d.workloads.length,
              localWorkloads: s.view.localWorkloads().length,
              services: d.services.length,
              authorizationPolicies: d.authorizationPolicies.length,
              peerAuthentications: d.peerAuthentications.length,
              routes: d.routes?.length ?? 0,
              destinationPolicies: d.destinationPolicies?.length ?? 0,
              certificates: this.identity.status().length,
            },
            ready: this.readiness(),
            components: Object.fromEntries(
              await Promise.all(this.parts.map(async (p) => [p.name, (await p.status?.()) ?? "running"] as const)),
            ),
          },
        };
      },
      { description: "controller connection, applied versions, counts" },
    );
  }
}
