/**
 * The controller's cache of Kubernetes objects, filled by one source (file store or API server)
 * and read by translation. Sources write; everything else reads the snapshot.
 */
import type { KubeObject } from "../api/kube-types.js";
import { type ClusterObjects, SOURCE_KINDS, type SourceKind } from "../translate/types.js";
import { objectKey } from "./kinds.js";

/** Cache of objects by kind, with change notification. */
export class ObjectStore {
  private readonly objects = new Map<SourceKind, Map<string, KubeObject>>(SOURCE_KINDS.map((k) => [k, new Map()]));
  private readonly lists = new Map<SourceKind, readonly KubeObject[]>();
  private readonly listeners = new Set<(kind: SourceKind) => void>();
  private generation = 0;

  /** Bumped on every change. */
  get version(): number {
    return this.generation;
  }

  /** Adds or replaces an object; returns false when it was identical (same resourceVersion or content). */
  upsert(kind: SourceKind, obj: KubeObject): boolean {
    const map = this.objects.get(kind) as Map<string, KubeObject>;
    const key = objectKey(kind, obj.metadata.namespace, obj.metadata.name);
    const prev = map.get(key);
    if (prev && sameObject(prev, obj)) return false;
    map.set(key, obj);
    this.changed(kind);
    return true;
  }

  /** Removes an object; returns false when it was not there. */
  remove(kind: SourceKind, namespace: string | undefined, name: string): boolean {
    const map = this.objects.get(kind) as Map<string, KubeObject>;
    if (!map.delete(objectKey(kind, namespace, name))) return false;
    this.changed(kind);
    return true;
  }

  /** One object. */
  get(kind: SourceKind, namespace: string | undefined, name: string): KubeObject | undefined {
    return this.objects.get(kind)?.get(objectKey(kind, namespace, name));
  }

  /** Every object of a kind (a cached array, replaced on change). */
  list(kind: SourceKind): readonly KubeObject[] {
    let l = this.lists.get(kind);
    if (!l) {
      l = [...(this.objects.get(kind) as Map<string, KubeObject>).values()];
      this.lists.set(kind, l);
    }
    return l;
  }

  /** All kinds, for translation. */
  snapshot(): ClusterObjects {
    return Object.fromEntries(SOURCE_KINDS.map((k) => [k, this.list(k)])) as unknown as ClusterObjects;
  }

  /** Counts per kind, for status. */
  counts(): Record<SourceKind, number> {
    return Object.fromEntries(SOURCE_KINDS.map((k) => [k, this.objects.get(k)?.size ?? 0])) as Record<SourceKind, number>;
  }

  /** Calls listener after every change. */
  onChange(listener: (kind: SourceKind) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private changed(kind: SourceKind): void {
    this.lists.delete(kind);
    this.generation++;
    for (const l of this.listeners) l(kind);
  }
}

function sameObject(a: KubeObject, b: KubeObject): boolean {
  const ra = a.metadata.resourceVersion;
  if (ra !== undefined && ra === b.metadata.resourceVersion) return true;
  return ra === undefined && b.metadata.resourceVersion === undefined && JSON.stringify(a) === JSON.stringify(b);
}
