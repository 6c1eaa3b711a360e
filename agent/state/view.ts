/**
 * The proxy's query-only view of an immutable mesh snapshot. Each proxy worker builds its own
 * view (with indexes) from the same cloneable snapshot data; nothing here ever mutates.
 */
import type {
  AuthorizationPolicy,
  DestinationPolicy,
  JwtRule,
  MeshSnapshotData,
  MtlsMode,
  PeerAuthentication,
  PolicyScope,
  RateLimitPolicy,
  RouteTable,
  Service,
  ServicePort,
  TracingPolicy,
  Workload,
} from "../../controller/api/model.js";

/** A service matched by VIP and port. */
export interface ServiceMatch {
  service: Service;
  port: ServicePort;
}

/** Effective mTLS mode at a workload's port, and which policy decided it. */
export interface EffectiveMtls {
  mode: Exclude<MtlsMode, "UNSET">;
  /** "<ns>/<name>" of the deciding PeerAuthentication, or "default". */
  source: string;
}

/** True when every selector label is on the workload (an empty selector matches all). */
export function labelsMatch(selector: Record<string, string> | undefined, labels: Record<string, string>): boolean {
  if (!selector) return true;
  for (const k of Object.keys(selector)) if (labels[k] !== selector[k]) return false;
  return true;
}

const NONE: readonly Service[] = Object.freeze([]);

/** Read-only, indexed view of one snapshot. */
export class MeshView {
  private readonly byAddress = new Map<string, Workload>();
  /** Addresses two workloads claim: nobody is trusted with them (fail closed, never "first wins"). */
  private readonly clashing = new Set<string>();
  private readonly byUid = new Map<string, Workload>();
  private readonly byVip = new Map<string, Service>();
  private readonly byKey = new Map<string, Service>();
  private readonly local: Workload[];
  private byEndpoint: Map<string, Service[]> | undefined;
  private readonly policiesByWorkload = new WeakMap<Workload, AuthorizationPolicy[]>();
  private readonly jwtByWorkload = new WeakMap<Workload, JwtRule[]>();
  private readonly rlByWorkload = new WeakMap<Workload, RateLimitPolicy[]>();
  private readonly samplingByWorkload = new WeakMap<Workload, { pct: number | undefined }>();

  constructor(readonly data: MeshSnapshotData) {
    for (const w of data.workloads) {
      this.byUid.set(w.uid, w);
      for (const a of w.addresses) {
        const other = this.byAddress.get(a);
        if (other && other.uid !== w.uid) this.clashing.add(a);
        else this.byAddress.set(a, w);
      }
    }
    for (const a of this.clashing) this.byAddress.delete(a);
    for (const s of data.services) {
      this.byKey.set(s.key, s);
      for (const v of s.vips) this.byVip.set(v, s);
    }
    this.local = data.workloads.filter((w) => w.node === data.nodeName);
  }

  /** Snapshot version. */
  get version(): string {
    return this.data.version;
  }

  /** This agent's node name. */
  get nodeName(): string {
    return this.data.nodeName;
  }

  /** The workload owning a pod IP; undefined when none or more than one claims it. */
  workloadByAddress(ip: string): Workload | undefined {
    return this.byAddress.get(ip);
  }

  /** True when two workloads claim this address: traffic to or from it must be refused. */
  isClashingAddress(ip: string): boolean {
    return this.clashing.has(ip);
  }

  /** A workload by pod uid. */
  workloadByUid(uid: string): Workload | undefined {
    return this.byUid.get(uid);
  }

  /** The service a VIP:port belongs to (undefined when the VIP is unknown or the port is not a service port). */
  serviceByAddress(ip: string, port: number): ServiceMatch | undefined {
    const service = this.byVip.get(ip);
    if (!service) return undefined;
    const p = service.ports.find((sp) => sp.port === port);
    return p ? { service, port: p } : undefined;
  }

  /** True when an address is some service's VIP, whatever the port. */
  isServiceVip(ip: string): boolean {
    return this.byVip.has(ip);
  }

  /** A service by "<namespace>/<name>". */
  serviceByKey(key: string): Service | undefined {
    return this.byKey.get(key);
  }

  /** Services (by key) that select a workload as an endpoint. */
  servicesOf(workload: Workload): readonly Service[] {
    // Asked per inbound connection (telemetry labels): index once per snapshot, on first use.
    if (!this.byEndpoint) {
      const idx = new Map<string, Service[]>();
      for (const svc of this.data.services) {
        for (const uid of new Set(svc.endpoints.map((e) => e.workloadUid))) {
          const list = idx.get(uid);
          if (list) list.push(svc);
          else idx.set(uid, [svc]);
        }
      }
      this.byEndpoint = idx;
    }
    return this.byEndpoint.get(workload.uid) ?? NONE;
  }

  /** Workloads scheduled on this node. */
  localWorkloads(): readonly Workload[] {
    return this.local;
  }

  /** True when a policy's scope covers the workload. */
  appliesTo(policy: { namespace: string; scope: PolicyScope }, w: Workload): boolean {
    if (policy.scope.kind === "mesh") return policy.namespace === this.data.rootNamespace && labelsMatch(policy.scope.selector, w.labels);
    if (policy.namespace !== w.namespace) return false;
    return policy.scope.kind === "namespace" || labelsMatch(policy.scope.selector, w.labels);
  }

  /**
   * The tracing sampling percentage Telemetry sets for a workload (undefined: none does, the
   * agent's flag decides). Istio's precedence: a selector-scoped Telemetry over the namespace's
   * over the root namespace's, an unset field inheriting; the oldest wins a tie within a level.
   */
  samplingFor(w: Workload): number | undefined {
    const cached = this.samplingByWorkload.get(w);
    if (cached !== undefined) return cached.pct;
    const levels: TracingPolicy[][] = [[], [], []];
    for (const p of this.data.tracingPolicies ?? []) {
      if (p.samplingPercentage === undefined || !this.appliesTo(p, w)) continue;
      levels[p.scope.selector ? 0 : p.scope.kind === "namespace" ? 1 : 2]?.push(p);
    }
    const oldest = (ps: TracingPolicy[]) =>
      ps.sort((a, b) => (a.createdAt === b.createdAt ? (a.key < b.key ? -1 : 1) : a.createdAt < b.createdAt ? -1 : 1))[0];
    const pct = levels.map(oldest).find((p) => p !== undefined)?.samplingPercentage;
    this.samplingByWorkload.set(w, { pct });
    return pct;
  }

  /** The RateLimitPolicies that apply to a workload. */
  rateLimitsFor(w: Workload): readonly RateLimitPolicy[] {
    let hit = this.rlByWorkload.get(w);
    if (!hit) {
      hit = (this.data.rateLimitPolicies ?? []).filter((p) => this.appliesTo(p, w));
      this.rlByWorkload.set(w, hit);
    }
    return hit;
  }

  /** The JWT rules of the RequestAuthentications that apply to a workload. */
  jwtRulesFor(w: Workload): readonly JwtRule[] {
    let hit = this.jwtByWorkload.get(w);
    if (!hit) {
      hit = (this.data.requestAuthentications ?? []).filter((p) => this.appliesTo(p, w)).flatMap((p) => p.jwtRules);
      this.jwtByWorkload.set(w, hit);
    }
    return hit;
  }

  /** AuthorizationPolicies that apply to a destination workload. */
  authorizationPoliciesFor(w: Workload): readonly AuthorizationPolicy[] {
    // Asked per connection at the destination: the answer only changes with the snapshot.
    let hit = this.policiesByWorkload.get(w);
    if (!hit) {
      hit = this.data.authorizationPolicies.filter((p) => this.appliesTo(p, w));
      this.policiesByWorkload.set(w, hit);
    }
    return hit;
  }

  /**
   * Effective PeerAuthentication mode at a workload port, with Istio's precedence: workload
   * policy (port-level first) over namespace over mesh; UNSET inherits; default PERMISSIVE.
   * Among several workload policies the oldest wins in Istio; here the lowest key, deterministically.
   */
  mtlsModeFor(w: Workload, port: number): EffectiveMtls {
    const applicable = this.data.peerAuthentications.filter((p) => this.appliesTo(p, w));
    const pick = (kind: PolicyScope["kind"]): PeerAuthentication | undefined =>
      applicable.filter((p) => p.scope.kind === kind).sort((a, b) => a.key.localeCompare(b.key))[0];
    const workload = pick("workload");
    const portMode = workload?.portLevelMtls[String(port)];
    if (workload && portMode && portMode !== "UNSET") return { mode: portMode, source: workload.key };
    for (const p of [workload, pick("namespace"), pick("mesh")]) {
      if (p && p.mode !== "UNSET") return { mode: p.mode, source: p.key };
    }
    return { mode: "PERMISSIVE", source: "default" };
  }

  /**
   * Route tables for calls from a client namespace to a service: those exported to the client
   * (exportTo "*" or its namespace), the client namespace's own first (consumer routes win, as in
   * GAMMA and Istio), then HTTPRoutes before VirtualServices (Istio ignores VirtualServices for a
   * service with a GAMMA HTTPRoute attached), then the oldest first.
   */
  routesFor(serviceKey: string, clientNamespace: string): RouteTable[] {
    return (this.data.routes ?? [])
      .filter((r) => r.services.includes(serviceKey) && (r.exportTo.includes("*") || r.exportTo.includes(clientNamespace)))
      .sort(
        (a, b) =>
          Number(b.namespace === clientNamespace) - Number(a.namespace === clientNamespace) ||
          Number(b.kind === "HTTPRoute") - Number(a.kind === "HTTPRoute") ||
          a.createdAt.localeCompare(b.createdAt) ||
          a.key.localeCompare(b.key),
      );
  }

  /**
   * The DestinationRule for calls to a service, looked up as Istio does: the client's namespace,
   * then the service's, then the root namespace; exported to the client and selecting it
   * (workloadSelector); the oldest wins within a namespace.
   */
  destinationPolicyFor(serviceKey: string, client: { namespace: string; labels: Record<string, string> }): DestinationPolicy | undefined {
    const service = this.byKey.get(serviceKey);
    const candidates = (this.data.destinationPolicies ?? []).filter(
      (d) =>
        d.service === serviceKey &&
        (d.exportTo.includes("*") || d.exportTo.includes(client.namespace)) &&
        (!d.workloadSelector || (d.namespace === client.namespace && labelsMatch(d.workloadSelector, client.labels))),
    );
    for (const ns of [client.namespace, service?.namespace, this.data.rootNamespace]) {
      const hit = candidates
        .filter((d) => d.namespace === ns)
        .sort((a, b) => a.createdAt.localeCompare(b.createdAt) || a.key.localeCompare(b.key))[0];
      if (hit) return hit;
    }
    return undefined;
  }
}
