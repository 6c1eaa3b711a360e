/**
 * What each node's agent receives (docs/CONTROL-PLANE.md, "What a node gets"):
 *  - Workloads: every pod on the node, in full (enrolled or not: the agent decides capture from
 *    them), plus remote pods that are enrolled (pod-IP traffic to them goes over HBONE and their
 *    identity is checked) or that back a Service (routing picks them as endpoints). Remote pods
 *    that are neither are left out: traffic to them passes through untouched.
 *  - Services, RouteTables, DestinationPolicies, MeshConfig, TrustBundle: all of them (any local
 *    client may call any service; routing happens on the client's node).
 *  - AuthorizationPolicies and PeerAuthentications: only those that apply to a pod on the node
 *    (they are enforced where the destination runs).
 */
import type {
  AuthorizationPolicy,
  PeerAuthentication,
  PolicyScope,
  RateLimitPolicy,
  RequestAuthentication,
  Workload,
} from "../api/model.js";
import type { ResourceKind } from "../api/resources.js";
import type { MeshModel } from "../translate/types.js";

/** The names of one kind a node needs (membership test and iteration, no copies). */
export interface NameSet {
  has(name: string): boolean;
  names(): Iterable<string>;
}

/** Names a node needs of one kind, or "all". */
export type Selection = "all" | NameSet;

function labelsMatch(selector: Record<string, string> | undefined, labels: Record<string, string>): boolean {
  if (!selector) return true;
  for (const k of Object.keys(selector)) if (labels[k] !== selector[k]) return false;
  return true;
}

/** Istio's scope rules (the same as MeshView.appliesTo). */
export function policyApplies(p: { namespace: string; scope: PolicyScope }, w: Workload, rootNamespace: string): boolean {
  if (p.scope.kind === "mesh") return p.namespace === rootNamespace && labelsMatch(p.scope.selector, w.labels);
  if (p.namespace !== w.namespace) return false;
  return p.scope.kind === "namespace" || labelsMatch(p.scope.selector, w.labels);
}

function setOf(s: ReadonlySet<string>): NameSet {
  return { has: (n) => s.has(n), names: () => s };
}

/** Names in exactly one of two sets. */
function symmetricDifference(a: ReadonlySet<string>, b: ReadonlySet<string>, out: Set<string>): Set<string> {
  for (const x of a) if (!b.has(x)) out.add(x);
  for (const x of b) if (!a.has(x)) out.add(x);
  return out;
}

/** Per-node selection over one model, with the indexes it needs built once. */
export class NodeSelector {
  private readonly byNode = new Map<string, Workload[]>();
  private readonly localUids = new Map<string, Set<string>>();
  /** Remote pods every node gets: enrolled ones and service endpoints. */
  readonly sharedRemote = new Set<string>();
  private readonly policiesByNs = new Map<
    string,
    { authz: AuthorizationPolicy[]; peer: PeerAuthentication[]; jwt: RequestAuthentication[]; rl: RateLimitPolicy[] }
  >();
  private readonly cache = new Map<string, Partial<Record<ResourceKind, Selection>>>();

  constructor(readonly model: MeshModel) {
    const endpoints = new Set<string>();
    for (const s of model.services) for (const e of s.endpoints) if (e.workloadUid) endpoints.add(e.workloadUid);
    for (const w of model.workloads) {
      const list = this.byNode.get(w.node);
      if (list) list.push(w);
      else this.byNode.set(w.node, [w]);
      if (w.enrolled || endpoints.has(w.uid)) this.sharedRemote.add(w.uid);
    }
    const bucket = (ns: string) => {
      let b = this.policiesByNs.get(ns);
      if (!b) {
        b = { authz: [], peer: [], jwt: [], rl: [] };
        this.policiesByNs.set(ns, b);
      }
      return b;
    };
    for (const p of model.authorizationPolicies) bucket(p.namespace).authz.push(p);
    for (const p of model.peerAuthentications) bucket(p.namespace).peer.push(p);
    for (const p of model.requestAuthentications ?? []) bucket(p.namespace).jwt.push(p);
    for (const p of model.rateLimitPolicies ?? []) bucket(p.namespace).rl.push(p);
  }

  /** Pods scheduled on a node. */
  localWorkloads(node: string): readonly Workload[] {
    return this.byNode.get(node) ?? [];
  }

  /** uids of the pods on a node. */
  localUidSet(node: string): ReadonlySet<string> {
    let s = this.localUids.get(node);
    if (!s) {
      s = new Set(this.localWorkloads(node).map((w) => w.uid));
      this.localUids.set(node, s);
    }
    return s;
  }

  /**
   * SPIFFE ids with at least one enrolled pod on the node: what its agent may get certificates
   * for. A pod outside the mesh never needs one, so its service account is not signed for.
   */
  identitiesOn(node: string): Set<string> {
    return new Set(this.localWorkloads(node).flatMap((w) => (w.enrolled ? [w.identity] : [])));
  }

  /** The names of one kind a node needs. */
  select(node: string, kind: ResourceKind): Selection {
    let perNode = this.cache.get(node);
    if (!perNode) {
      perNode = {};
      this.cache.set(node, perNode);
    }
    const hit = perNode[kind];
    if (hit) return hit;
    const sel = this.compute(node, kind);
    perNode[kind] = sel;
    return sel;
  }

  /**
   * Names whose membership in the node's selection differs between an older selector and this
   * one (content changes are tracked separately, by version).
   */
  membershipDelta(older: NodeSelector, node: string, kind: ResourceKind, sharedDelta: ReadonlySet<string>): Set<string> {
    const out = new Set<string>();
    switch (kind) {
      case "Workload": {
        // In a node's selection = shared remote or local; a name can only flip where either set changed.
        const local = symmetricDifference(older.localUidSet(node), this.localUidSet(node), new Set());
        for (const n of [...sharedDelta, ...local]) {
          const before = older.sharedRemote.has(n) || older.localUidSet(node).has(n);
          const after = this.sharedRemote.has(n) || this.localUidSet(node).has(n);
          if (before !== after) out.add(n);
        }
        return out;
      }
      case "AuthorizationPolicy":
      case "PeerAuthentication":
      case "RequestAuthentication":
      case "RateLimitPolicy": {
        const a = older.select(node, kind) as NameSet;
        const b = this.select(node, kind) as NameSet;
        return symmetricDifference(new Set(a.names()), new Set(b.names()), out);
      }
      default:
        return out;
    }
  }

  private compute(node: string, kind: ResourceKind): Selection {
    switch (kind) {
      case "Workload": {
        const local = this.localUidSet(node);
        const shared = this.sharedRemote;
        return {
          has: (n) => shared.has(n) || local.has(n),
          *names() {
            yield* shared;
            for (const n of local) if (!shared.has(n)) yield n;
          },
        };
      }
      case "AuthorizationPolicy":
      case "PeerAuthentication":
      case "RequestAuthentication":
      case "RateLimitPolicy": {
        const out = new Set<string>();
        const local = this.localWorkloads(node);
        const root = this.model.meshConfig.rootNamespace;
        const namespaces = new Set(local.map((w) => w.namespace));
        namespaces.add(root);
        for (const ns of namespaces) {
          const b = this.policiesByNs.get(ns);
          if (!b) continue;
          const of = { AuthorizationPolicy: b.authz, PeerAuthentication: b.peer, RequestAuthentication: b.jwt, RateLimitPolicy: b.rl };
          for (const p of of[kind]) {
            if (local.some((w) => policyApplies(p, w, root))) out.add(p.key);
          }
        }
        return setOf(out);
      }
      default:
        return "all";
    }
  }
}
