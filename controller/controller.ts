/**
 * The controller's composition root: source → object store → (debounced) translation → xDS
 * push, the CA with node authorization, one TLS gRPC server for both, and a status socket.
 */
import { readdirSync, statSync } from "node:fs";
import { isIP } from "node:net";
import { join } from "node:path";
import { Server, type ServerCredentials } from "@grpc/grpc-js";
import { AdminServer } from "../common/admin-server.js";
import { errorMessage, errorStack } from "../common/errors.js";
import { createLogger, type Logger } from "../common/log.js";
import { LiveAnalysis } from "./analyze/live.js";
import { SERVICES, serviceDefinition } from "./api/proto.js";
import { type CaMaterial, CertificateAuthority } from "./ca/ca.js";
import { BootstrapTokens, type NodeAuthenticator, TokenReviewAuthenticator } from "./ca/node-auth.js";
import { publishRootConfigMap } from "./ca/root-configmap.js";
import { caDir, loadPluginCa, loadSecretCa, loadStateDirCa } from "./ca/root-store.js";
import { CaService } from "./ca/service.js";
import type { ControllerConfig } from "./config.js";
import { DiagnosticsReporter } from "./diagnostics.js";
import { holdNewEnrolments, type SourceCondition, sourceConditions } from "./enrolment-hold.js";
import { DEFAULT_LEASE_TIMING, LeaseElector } from "./ha/lease.js";
import { RotatingServerCredentials } from "./server-credentials.js";
import { FileSource } from "./sources/file.js";
import { KubeSource } from "./sources/kube.js";
import { KubeClient, loadKubeConfig, waitForApiServer } from "./sources/kube-client.js";
import { KubeEventSink } from "./sources/kube-events.js";
import { CrdStatusWriter, STATUS_KINDS } from "./sources/kube-status.js";
import { ObjectStore } from "./sources/object-store.js";
import { TranslationMemo, translate } from "./translate/index.js";
import type { Diagnostic, MeshModel } from "./translate/types.js";
import { Debouncer } from "./xds/debounce.js";
import { XdsService } from "./xds/service.js";

/** Lifetime of the controller's serving certificate (renewed at half life). */
const SERVING_TTL_MS = 30 * 24 * 3600_000;

/** The Lease replicas elect a leader with (in the controller's namespace; daemonset/ grants it). */
const LEADER_LEASE = "weft-controller";

/** A running controller. */
export class Controller {
  readonly log: Logger;
  readonly store = new ObjectStore();
  private ca!: CertificateAuthority;
  private caSignature = "";
  private auth!: NodeAuthenticator;
  private tokens: BootstrapTokens | undefined;
  /** Nodes whose tokens this controller keeps (revoked when they leave). */
  private tokenNodes = new Set<string>();
  private fileSource: FileSource | undefined;
  private kubeSource: KubeSource | undefined;
  private kube: KubeClient | undefined;
  private events: KubeEventSink | undefined;
  private statuses: CrdStatusWriter | undefined;
  private elector: LeaseElector | undefined;
  /** Aborted by stop(): ends a wait for an unreachable API server. */
  private readonly stopping = new AbortController();
  private server: Server | undefined;
  private creds: RotatingServerCredentials | undefined;
  private readonly admin: AdminServer;
  private readonly timers: NodeJS.Timeout[] = [];
  private model: MeshModel | undefined;
  private readonly memo = new TranslationMemo();
  private reporter!: DiagnosticsReporter;
  /** `weft analyze` of the live objects (GET /analyze, and a summary in status). */
  private readonly analysis: LiveAnalysis;
  /** Why sources are not fully readable (status); logged when they change. */
  private conditions: SourceCondition[] = [];
  private readonly badTokenNodes = new Set<string>();
  private debouncer!: Debouncer;
  xds!: XdsService;
  caService!: CaService;
  /** The port the gRPC server is bound to. */
  port = 0;
  /** Translations done (status, tests). */
  translations = 0;

  constructor(
    readonly config: ControllerConfig,
    log?: Logger,
  ) {
    this.log = log ?? createLogger({ name: "weft-controller", level: config.logLevel });
    this.admin = new AdminServer(this.log);
    // Before start() there is no xDS service yet: no agent is connected.
    this.analysis = new LiveAnalysis(this.store, config.translate, () =>
      (this.xds as XdsService | undefined) ? this.xds.status().agents.map((a) => a.node) : [],
    );
  }

  /** Starts everything; resolves when the gRPC server is listening with a first mesh state. */
  async start(): Promise<void> {
    try {
      await this.startOrThrow();
    } catch (e) {
      // Leave nothing running (informer retries, watchers) behind a failed start.
      await this.stop().catch(() => undefined);
      throw e;
    }
  }

  private async startOrThrow(): Promise<void> {
    const c = this.config;
    this.log.info({ source: c.source.kind, listen: `${c.listenHost}:${c.listenPort}`, stateDir: c.stateDir }, "controller starting");
    // Sources are checked before anything is written (a wrong --store must not leave a new CA behind).
    if (c.source.kind === "kubernetes") {
      this.kube = new KubeClient(await loadKubeConfig(c.source.connection));
      await waitForApiServer(this.kube, this.log, this.stopping.signal);
    } else this.fileSource = new FileSource({ path: c.source.path, store: this.store, log: this.log });
    await this.loadCa();
    if (this.kube) {
      this.events = new KubeEventSink(this.kube, this.log);
      // Every replica serves; only the Lease holder writes Events (single-writer work).
      this.elector = new LeaseElector(this.kube, c.namespace, LEADER_LEASE, this.log, c.leaderLease ?? DEFAULT_LEASE_TIMING);
      const elector = this.elector;
      this.events.gate = () => elector.isLeader;
      this.statuses = new CrdStatusWriter(this.kube, this.log);
      this.statuses.gate = () => elector.isLeader;
      // A replica that takes over writes the conditions its predecessor had not written yet.
      elector.onChange((leader) => {
        if (leader && this.model) this.writeStatuses(this.model.diagnostics);
      });
      await elector.start();
      this.auth = new TokenReviewAuthenticator({
        client: this.kube,
        audiences: c.tokenAudiences,
        agentServiceAccounts: c.agentServiceAccounts,
        podNode: (ns, name, uid) => {
          const pod = this.store.get("Pod", ns, name) as { spec?: { nodeName?: string }; metadata: { uid?: string } } | undefined;
          if (!pod || (uid && pod.metadata.uid !== uid)) return undefined;
          return pod.spec?.nodeName;
        },
      });
    } else {
      this.tokens = new BootstrapTokens(join(c.stateDir, "tokens"));
      this.auth = this.tokens;
    }
    this.reporter = new DiagnosticsReporter(this.log, this.events);
    this.xds = new XdsService(this.auth, this.log, c.limits);
    this.caService = new CaService(
      () => this.ca,
      this.auth,
      (node) => this.xds.resources?.selector.identitiesOn(node) ?? new Set(),
      this.log,
    );
    this.debouncer = new Debouncer(c.debounceMs, c.maxDebounceMs, () => this.recompute());
    this.store.onChange(() => this.debouncer.trigger());

    if (c.source.kind === "file") {
      this.fileSource?.start();
    } else {
      this.kubeSource = new KubeSource({
        client: this.kube as KubeClient,
        store: this.store,
        log: this.log,
        rootNamespace: c.translate.rootNamespace,
        agentNamespaces: [...new Set(c.agentServiceAccounts.map((sa) => sa.split("/")[0] as string))],
        ...(c.source.namespaceSelector ? { namespaceSelector: c.source.namespaceSelector } : {}),
      });
      await this.kubeSource.start();
    }
    // The first state is computed before serving: an agent never sees a half-loaded cluster.
    this.debouncer.cancel();
    this.recompute();
    await this.serve();
    for (const cond of this.conditions) this.log.error({ condition: cond.type, kinds: cond.kinds }, cond.message);
    this.registerAdmin();
    await this.admin.listenUnix(c.adminSocket).catch((e) => this.log.warn({ err: errorMessage(e) }, "no status socket"));
    if (c.ca.kind === "state-dir") this.every(2000, () => this.reloadCaIfChanged());
    if (c.ca.kind === "secret") {
      // Agents mount the roots as their --ca-file; republished in case someone edits or deletes it.
      await this.publishRoots();
      this.every(60_000, () => this.publishRoots());
    }
    // A kind becoming unreadable (or readable) changes no object: look for it here.
    if (this.kubeSource) this.every(1000, () => this.recheckConditions());
    // Tokens rotate at half life even when nothing else changes.
    if (this.tokens) this.every(3600_000, () => this.syncTokens([...this.tokenNodes]));
    this.log.info({ port: this.port, ca: this.ca.origin }, "controller ready");
  }

  /** Keeps the agents' root ConfigMap (in the CA Secret's namespace) equal to the trust bundle. */
  private async publishRoots(): Promise<void> {
    if (this.config.ca.kind !== "secret" || !this.kube) return;
    const roots = this.ca.trustBundle().rootsPem.join("");
    try {
      const r = await publishRootConfigMap(this.kube, this.config.ca.namespace, roots);
      if (r !== "unchanged") this.log.info({ namespace: this.config.ca.namespace, result: r }, "published the agents' root ConfigMap");
    } catch (e) {
      this.log.error(
        { err: errorMessage(e) },
        "cannot publish the agents' root ConfigMap; agents that start now cannot verify the controller",
      );
    }
  }

  private every(ms: number, fn: () => void | Promise<void>): void {
    const t = setInterval(() => {
      Promise.resolve(fn()).catch((e) => this.log.error({ err: errorMessage(e) }, "periodic task failed"));
    }, ms);
    t.unref();
    this.timers.push(t);
  }

  private async loadCa(): Promise<void> {
    const c = this.config;
    let material: CaMaterial;
    if (c.ca.kind === "files") material = loadPluginCa(c.ca.dir);
    else if (c.ca.kind === "secret")
      material = await loadSecretCa(this.kube as KubeClient, c.ca.namespace, c.ca.name, c.translate.trustDomain, true);
    else {
      const r = loadStateDirCa(c.stateDir, c.translate.trustDomain);
      if (r.created) this.log.info({ dir: caDir(c.stateDir) }, "generated a new root CA (key 0600)");
      material = r.material;
    }
    this.caSignature = this.caDirSignature();
    this.ca = new CertificateAuthority(material, {
      trustDomain: c.translate.trustDomain,
      defaultTtlMs: c.certTtlMs,
      maxTtlMs: c.maxCertTtlMs,
    });
  }

  /** Changes in <state>/ca (files and their mtimes), cheap enough to poll. */
  private caDirSignature(): string {
    if (this.config.ca.kind !== "state-dir") return "";
    const dir = caDir(this.config.stateDir);
    const walk = (d: string): string[] =>
      readdirSync(d, { withFileTypes: true }).flatMap((e) => {
        const p = join(d, e.name);
        if (e.isDirectory()) return walk(p);
        return e.name.startsWith(".") ? [] : [`${p}:${statSync(p).mtimeMs}`];
      });
    try {
      return walk(dir).sort().join("|");
    } catch {
      return "";
    }
  }

  /** Reloads the CA after a rotation step; a bad state is logged and the old CA kept. */
  private reloadCaIfChanged(): void {
    const sig = this.caDirSignature();
    if (sig === this.caSignature) return;
    this.caSignature = sig;
    try {
      const { material } = loadStateDirCa(this.config.stateDir, this.config.translate.trustDomain);
      const before = this.ca.trustBundle().signingRootSha256;
      this.ca.replace(material);
      const after = this.ca.trustBundle();
      this.log.info({ roots: after.rootsPem.length, signingRoot: after.signingRootSha256.slice(0, 16) }, "CA reloaded");
      if (after.signingRootSha256 !== before) this.renewServingCert();
      this.recompute();
    } catch (e) {
      this.log.error({ err: errorMessage(e) }, "CA files changed but cannot be loaded; still signing with the previous CA");
    }
  }

  private recompute(): void {
    try {
      this.recomputeOrThrow();
    } catch (e) {
      // A bug must not take the control plane down: agents keep the last state that was pushed.
      this.log.error({ err: errorMessage(e), stack: errorStack(e) }, "could not compute the mesh state; keeping the previous one");
    }
  }

  /** Tokens for every node (minted, rotated at half life); a node that left has its token revoked. */
  private syncTokens(nodes: readonly string[]): void {
    if (!this.tokens) return;
    const now = new Set(nodes);
    for (const n of this.tokenNodes) {
      if (now.has(n)) continue;
      this.tokens.revoke(n);
      this.log.info({ node: n }, "node left the cluster; its bootstrap token is revoked");
    }
    for (const n of now) this.ensureToken(n);
    this.tokenNodes = now;
  }

  /** Kubernetes mode: the Accepted condition on weft's own CRD objects. */
  private writeStatuses(diagnostics: readonly Diagnostic[]): void {
    this.statuses?.update(new Map(STATUS_KINDS.map((k) => [k, this.store.list(k)])), diagnostics);
  }

  private recomputeOrThrow(): void {
    const start = performance.now();
    let model = translate(this.store.snapshot(), this.config.translate, this.memo);
    const translateMs = performance.now() - start;
    this.updateConditions();
    const unknown = this.conditions.find((c) => c.type === "PolicyUnknown");
    if (unknown) {
      const before = new Set(this.model?.workloads.filter((w) => w.enrolled).map((w) => w.uid));
      model = holdNewEnrolments(model, before, `policy is not known (${unknown.kinds.join(", ")} cannot be read)`);
    }
    this.translations++;
    this.model = model;
    this.reporter.update(model.diagnostics);
    this.writeStatuses(model.diagnostics);
    if (this.tokens) this.syncTokens(model.nodes);
    const set = this.xds.update(model, this.ca.trustBundle());
    this.log.debug(
      {
        version: set.systemVersion,
        ms: Math.round(performance.now() - start),
        translateMs: Math.round(translateMs),
        buildMs: this.xds.stats.lastBuildMs,
        workloads: model.workloads.length,
        services: model.services.length,
      },
      "mesh state pushed",
    );
  }

  /** One node's token; a node that cannot get one is logged (once), and the rest of the mesh still flows. */
  private ensureToken(node: string): void {
    try {
      (this.tokens as BootstrapTokens).ensure(node);
    } catch (e) {
      if (this.badTokenNodes.has(node)) return;
      this.badTokenNodes.add(node);
      this.log.error({ node, err: (e as Error).message }, "cannot mint a bootstrap token for this node; its agent cannot connect");
    }
  }

  private recheckConditions(): void {
    const next = this.kubeSource ? sourceConditions(this.kubeSource.unreadable()) : [];
    if (JSON.stringify(next) !== JSON.stringify(this.conditions)) this.debouncer.trigger();
  }

  /** Source conditions from the Kubernetes source; each change is logged (at error while policy is unknown or stale). */
  private updateConditions(): void {
    const next = this.kubeSource ? sourceConditions(this.kubeSource.unreadable()) : [];
    const text = (l: SourceCondition[]) => JSON.stringify(l);
    if (text(next) === text(this.conditions)) return;
    // Before serving, kinds are still being listed: that is starting, not a condition to shout about.
    if (this.server) {
      for (const c of next) this.log.error({ condition: c.type, kinds: c.kinds }, c.message);
      if (next.length === 0) this.log.info("every source kind can be read again");
    }
    this.conditions = next;
  }

  private servingNames(): { dns: string[]; ips: string[] } {
    const c = this.config;
    const dns = new Set([
      "weft-controller",
      `weft-controller.${c.namespace}.svc`,
      `weft-controller.${c.namespace}.svc.${c.translate.clusterDomain}`,
      "localhost",
    ]);
    const ips = new Set(["127.0.0.1", "::1"]);
    if (c.listenHost !== "0.0.0.0" && c.listenHost !== "::" && isIP(c.listenHost)) ips.add(c.listenHost);
    for (const n of c.serverNames) (isIP(n) ? ips : dns).add(n);
    return { dns: [...dns], ips: [...ips] };
  }

  private renewServingCert(): void {
    const names = this.servingNames();
    const s = this.ca.issueServing(names.dns, names.ips, SERVING_TTL_MS);
    if (this.creds) this.creds.update(s.certChainPem, s.keyPem);
    else this.creds = new RotatingServerCredentials(s.certChainPem, s.keyPem);
    this.log.info({ notAfter: s.notAfter.toISOString(), names: [...names.dns, ...names.ips] }, "serving certificate issued");
  }

  private async serve(): Promise<void> {
    this.renewServingCert();
    this.every(SERVING_TTL_MS / 2, () => this.renewServingCert());
    const server = new Server({
      "grpc.keepalive_time_ms": 30_000,
      "grpc.keepalive_timeout_ms": 10_000,
      "grpc.http2.min_ping_interval_without_data_ms": 5_000,
      "grpc.keepalive_permit_without_calls": 1,
      "grpc.max_receive_message_length": 4 * 1024 * 1024,
      "grpc.max_send_message_length": 256 * 1024 * 1024,
    });
    server.addService(serviceDefinition(SERVICES.discovery), this.xds.handlers());
    server.addService(serviceDefinition(SERVICES.certificates), this.caService.handlers());
    const host = this.config.listenHost.includes(":") ? `[${this.config.listenHost}]` : this.config.listenHost;
    this.port = await new Promise<number>((resolve, reject) =>
      server.bindAsync(`${host}:${this.config.listenPort}`, this.creds as ServerCredentials, (err, port) => {
        if (err) reject(new Error(`cannot listen on ${host}:${this.config.listenPort}: ${err.message}`));
        else resolve(port);
      }),
    );
    this.server = server;
  }

  private registerAdmin(): void {
    this.admin.register("/healthz", () => ({ text: "ok\n" }), { description: "liveness" });
    this.admin.register("/status", () => ({ json: this.status() }), { description: "sources, agents, pushes, CA" });
    this.admin.register("/metrics", async () => ({ text: await this.xds.metrics.registry.metrics() }), {
      description: "Prometheus text: limits hit, refused calls",
    });
    this.admin.register(
      "/config_dump",
      ({ url }) => {
        const node = url.searchParams.get("node");
        const set = this.xds.resources;
        if (!set) return { status: 503, json: { error: "no mesh state yet" } };
        if (!node) return { json: { version: set.systemVersion, model: this.model } };
        return {
          json: {
            version: set.systemVersion,
            node,
            selection: Object.fromEntries(
              ["Workload", "AuthorizationPolicy", "PeerAuthentication"].map((k) => [
                k,
                [...set.forNode(node, k as "Workload")].map((r) => r.name),
              ]),
            ),
          },
        };
      },
      { description: "the translated mesh (?node=N: what that node is sent)" },
    );
    this.admin.register("/diagnostics", () => ({ json: this.reporter.list() }), { description: "invalid and unsupported objects" });
    this.admin.register("/analyze", () => ({ json: { messages: this.analysis.messages() } }), {
      description: "weft analyze of the live objects and connected agents (codes: docs/analyze/)",
    });
  }

  /** Status for the admin socket and tests. */
  status(): object {
    const bundle = this.ca.trustBundle();
    return {
      source: this.config.source.kind,
      objects: this.store.counts(),
      file: this.fileSource?.status(),
      kubernetes: this.kubeSource
        ? {
            watching: this.kubeSource.status(),
            missing: [...this.kubeSource.missing],
            events: this.events && { sent: this.events.sent, dropped: this.events.dropped },
          }
        : undefined,
      conditions: this.conditions,
      translations: this.translations,
      diagnostics: this.reporter.list().length,
      analysis: this.analysis.summary(),
      xds: this.xds.status(),
      ca: {
        origin: this.ca.origin,
        issued: this.caService.stats.issued,
        refused: this.caService.stats.refused,
        roots: bundle.rootsPem.length,
        signingRootSha256: bundle.signingRootSha256,
      },
    };
  }

  /** Stops serving and watching. */
  /** Kubernetes mode: whether this replica holds the leader Lease (null in file mode). */
  get isLeader(): boolean | null {
    return this.elector ? this.elector.isLeader : null;
  }

  /** Stops without giving up the leader Lease, as a crash would (tests of takeover). */
  async crash(): Promise<void> {
    await this.elector?.stop(false);
    await this.stop();
  }

  async stop(): Promise<void> {
    this.stopping.abort();
    await this.elector?.stop();
    for (const t of this.timers.splice(0)) clearInterval(t);
    this.debouncer?.cancel();
    this.fileSource?.stop();
    await this.kubeSource?.stop();
    await this.admin.close();
    // Agent streams never end by themselves; cut them (agents reconnect to the next controller).
    this.server?.forceShutdown();
  }
}
