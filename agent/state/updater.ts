/**
 * The agent's state updater: the only writer of mesh state. The xDS client (or the local-file
 * source) hands it validated resources; it keeps them per type and publishes an immutable
 * snapshot (plain, cloneable MeshSnapshotData plus a MeshView over it) through a watch. Several
 * updates in one tick (one push sends each type in turn) are published once, together.
 */
import type { MeshSnapshotData } from "../../controller/api/model.js";
import { deepFreeze, RESOURCE_KINDS, type ResourceKind, type ResourceValues } from "../../controller/api/resources.js";
import type { MeshConfig, TrustBundle } from "../../controller/api/wire-types.js";
import { MeshView } from "./view.js";
import { createWatch, type ReadonlyWatch, type WatchSetter } from "./watch.js";

/** One published state. */
export interface MeshState {
  /** Increments on every publish. */
  revision: number;
  /** What the proxy reads (and the admin API dumps). */
  data: MeshSnapshotData;
  /** Indexed, query-only view of data. */
  view: MeshView;
  meshConfig?: MeshConfig;
  trustBundle?: TrustBundle;
  /** True once every type has been received at least once (from the controller or a file). */
  synced: boolean;
}

/** A resource as the updater stores it. */
export interface StoredResource<K extends ResourceKind = ResourceKind> {
  name: string;
  version: string;
  value: ResourceValues[K];
}

/** Defaults used before the controller's MeshConfig arrives. */
export interface UpdaterDefaults {
  trustDomain: string;
  rootNamespace: string;
}

function byName<T>(m: Map<string, StoredResource>): T[] {
  return [...m.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0)).map((r) => r.value as T);
}

/** Holds the agent's resources and publishes snapshots. */
export class StateUpdater {
  private readonly resources = new Map<ResourceKind, Map<string, StoredResource>>(RESOURCE_KINDS.map((k) => [k, new Map()]));
  private readonly systemVersions = new Map<ResourceKind, string>();
  private readonly received = new Set<ResourceKind>();
  private pending: NodeJS.Immediate | undefined;
  private revision = 0;
  /** The published state: read-only; this class is its only writer. */
  readonly state: ReadonlyWatch<MeshState>;
  private readonly publish: WatchSetter<MeshState>;

  constructor(
    readonly nodeName: string,
    private readonly defaults: UpdaterDefaults,
  ) {
    const { watch, set } = createWatch(this.build());
    this.state = watch;
    this.publish = set;
  }

  /** name → version held for a type (what a reconnecting client tells the controller it has). */
  versions(kind: ResourceKind): Record<string, string> {
    const out: Record<string, string> = {};
    for (const r of (this.resources.get(kind) as Map<string, StoredResource>).values()) out[r.name] = r.version;
    return out;
  }

  /** The controller's push version last applied, per type. */
  appliedVersions(): Partial<Record<ResourceKind, string>> {
    return Object.fromEntries(this.systemVersions);
  }

  /** Resources held of a type. */
  held(kind: ResourceKind): readonly StoredResource[] {
    return [...(this.resources.get(kind) as Map<string, StoredResource>).values()];
  }

  /** Applies one delta of a type (values already validated); publishes on the next tick. */
  apply<K extends ResourceKind>(kind: K, systemVersion: string, upserts: readonly StoredResource<K>[], removed: readonly string[]): void {
    const map = this.resources.get(kind) as Map<string, StoredResource>;
    for (const name of removed) map.delete(name);
    for (const r of upserts) map.set(r.name, r as StoredResource);
    if (systemVersion) this.systemVersions.set(kind, systemVersion);
    this.received.add(kind);
    this.schedule();
  }

  /** Replaces every type at once (local-file mode); publishes on the next tick. */
  replaceAll(version: string, all: { [K in ResourceKind]: StoredResource<K>[] }): void {
    for (const kind of RESOURCE_KINDS) {
      const map = this.resources.get(kind) as Map<string, StoredResource>;
      map.clear();
      for (const r of all[kind]) map.set(r.name, r as StoredResource);
      this.systemVersions.set(kind, version);
      this.received.add(kind);
    }
    this.schedule();
  }

  /** Publishes now instead of on the next tick (tests, shutdown). */
  flush(): MeshState {
    if (this.pending) {
      clearImmediate(this.pending);
      this.pending = undefined;
      this.publish(this.build());
    }
    return this.state.get();
  }

  private schedule(): void {
    if (this.pending) return;
    this.pending = setImmediate(() => {
      this.pending = undefined;
      this.publish(this.build());
    });
  }

  private build(): MeshState {
    const get = (k: ResourceKind) => this.resources.get(k) as Map<string, StoredResource>;
    const meshConfig = get("MeshConfig").values().next().value?.value as MeshConfig | undefined;
    const trustBundle = get("TrustBundle").values().next().value?.value as TrustBundle | undefined;
    const version = RESOURCE_KINDS.filter((k) => this.systemVersions.has(k))
      .map((k) => `${k}=${this.systemVersions.get(k)}`)
      .join(",");
    const data: MeshSnapshotData = deepFreeze({
      version,
      nodeName: this.nodeName,
      trustDomain: meshConfig?.trustDomain ?? this.defaults.trustDomain,
      rootNamespace: meshConfig?.rootNamespace ?? this.defaults.rootNamespace,
      workloads: byName(get("Workload")),
      services: byName(get("Service")),
      authorizationPolicies: byName(get("AuthorizationPolicy")),
      peerAuthentications: byName(get("PeerAuthentication")),
      requestAuthentications: byName(get("RequestAuthentication")),
      rateLimitPolicies: byName(get("RateLimitPolicy")),
      routes: byName(get("RouteTable")),
      destinationPolicies: byName(get("DestinationPolicy")),
      ...(meshConfig?.refused?.length ? { refused: meshConfig.refused } : {}),
      ...(meshConfig?.tracing?.length ? { tracingPolicies: meshConfig.tracing } : {}),
    });
    const state: MeshState = {
      revision: ++this.revision,
      data,
      view: new MeshView(data),
      synced: RESOURCE_KINDS.every((k) => this.received.has(k)),
    };
    if (meshConfig) state.meshConfig = meshConfig;
    if (trustBundle) state.trustBundle = trustBundle;
    return Object.freeze(state);
  }
}
