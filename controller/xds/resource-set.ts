/**
 * One computed mesh state, encoded: every resource's protobuf body and its version (a hash of
 * the body, so equal content has equal versions, across pushes and controller restarts). Built
 * once per push and shared by all agent streams, so each resource is encoded once, not per agent.
 */
import { createHash } from "node:crypto";
import { encodeResource, RESOURCE_KINDS, type ResourceKind, type ResourceValues, resourceName } from "../api/resources.js";
import type { TrustBundle } from "../api/wire-types.js";
import type { MeshModel } from "../translate/types.js";
import { NodeSelector } from "./node-selection.js";

/** A resource ready to send. */
export interface EncodedResource {
  name: string;
  version: string;
  body: Uint8Array;
}

/** Version of an encoded body. */
export function bodyVersion(body: Uint8Array): string {
  return createHash("sha256").update(body).digest("base64url").slice(0, 16);
}

/** The values of each kind in a model. */
export function valuesOf(model: MeshModel, bundle: TrustBundle): { [K in ResourceKind]: ResourceValues[K][] } {
  return {
    MeshConfig: [model.meshConfig],
    TrustBundle: [bundle],
    Workload: model.workloads,
    Service: model.services,
    AuthorizationPolicy: model.authorizationPolicies,
    PeerAuthentication: model.peerAuthentications,
    RequestAuthentication: model.requestAuthentications ?? [],
    RateLimitPolicy: model.rateLimitPolicies ?? [],
    DestinationPolicy: model.destinationPolicies,
    RouteTable: model.routes,
  };
}

/** Every resource of one mesh state, encoded, plus the per-node selection. */
export class ResourceSet {
  private readonly byKind = new Map<ResourceKind, Map<string, EncodedResource>>();
  /** Encodings by model value: a value translation kept (unchanged input) is not encoded again. */
  private readonly byValue = new WeakMap<object, EncodedResource>();
  readonly selector: NodeSelector;
  /**
   * Names added, changed or removed since the previous set, per kind; undefined without one.
   * Streams diff only these (plus selection changes) instead of everything.
   */
  readonly changed: ReadonlyMap<ResourceKind, ReadonlySet<string>> | undefined;
  /** Workloads that entered or left the shared remote selection since the previous set. */
  readonly sharedDelta: ReadonlySet<string>;

  constructor(
    readonly model: MeshModel,
    readonly bundle: TrustBundle,
    /** The push version ("<controller epoch>-<n>"). */
    readonly systemVersion: string,
    previous?: ResourceSet,
  ) {
    this.selector = new NodeSelector(model);
    const values = valuesOf(model, bundle);
    const changed = new Map<ResourceKind, Set<string>>();
    for (const kind of RESOURCE_KINDS) {
      const prev = previous?.byKind.get(kind);
      const map = new Map<string, EncodedResource>();
      const diff = new Set<string>();
      for (const v of values[kind] as ResourceValues[typeof kind][]) {
        let enc = previous?.byValue.get(v as object);
        if (!enc) {
          const name = resourceName(kind, v);
          const body = encodeResource(kind, v);
          const version = bodyVersion(body);
          // Same content as before: keep the old object, so unchanged stays identical.
          const old = prev?.get(name);
          enc = old && old.version === version ? old : { name, version, body };
        }
        this.byValue.set(v as object, enc);
        map.set(enc.name, enc);
        if (prev?.get(enc.name) !== enc) diff.add(enc.name);
      }
      if (prev) for (const name of prev.keys()) if (!map.has(name)) diff.add(name);
      this.byKind.set(kind, map);
      changed.set(kind, diff);
    }
    this.changed = previous ? changed : undefined;
    const delta = new Set<string>();
    if (previous) {
      for (const u of previous.selector.sharedRemote) if (!this.selector.sharedRemote.has(u)) delta.add(u);
      for (const u of this.selector.sharedRemote) if (!previous.selector.sharedRemote.has(u)) delta.add(u);
    }
    this.sharedDelta = delta;
  }

  /** All resources of a kind. */
  all(kind: ResourceKind): ReadonlyMap<string, EncodedResource> {
    return this.byKind.get(kind) as Map<string, EncodedResource>;
  }

  /** One resource. */
  get(kind: ResourceKind, name: string): EncodedResource | undefined {
    return this.byKind.get(kind)?.get(name);
  }

  /** What a node needs of a kind. */
  *forNode(node: string, kind: ResourceKind): Iterable<EncodedResource> {
    const sel = this.selector.select(node, kind);
    const all = this.all(kind);
    if (sel === "all") {
      yield* all.values();
      return;
    }
    for (const name of sel.names()) {
      const r = all.get(name);
      if (r) yield r;
    }
  }

  /** True when a node's selection of a kind includes a name. */
  selects(node: string, kind: ResourceKind, name: string): boolean {
    const sel = this.selector.select(node, kind);
    return sel === "all" ? this.all(kind).has(name) : sel.has(name) && this.all(kind).has(name);
  }

  /** Counts per kind. */
  counts(): Record<ResourceKind, number> {
    return Object.fromEntries(RESOURCE_KINDS.map((k) => [k, this.all(k).size])) as Record<ResourceKind, number>;
  }
}
