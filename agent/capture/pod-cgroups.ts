/**
 * Finding a pod's cgroup directory under the node's pod parent cgroup. Two layouts: weft's local
 * cluster (`<parent>/<namespace>.<pod>`), and kubelet's (a directory named after the pod uid,
 * `pod<uid>` with cgroupfs or `kubepods-<qos>-pod<uid_with_underscores>.slice` with systemd,
 * one or two levels down for the QoS classes).
 */
import { readdirSync, statSync } from "node:fs";
import { join } from "node:path";

/** How pod cgroups are laid out under the parent. */
export type CgroupLayout = "local" | "kubelet";

/** What identifies a pod on disk. */
export interface PodRef {
  uid: string;
  namespace: string;
  name: string;
}

/** Resolves pod cgroup paths, caching kubelet lookups (a scan per miss, not per reconcile). */
export class PodCgroups {
  private readonly cache = new Map<string, string>();

  constructor(
    private readonly parent: string,
    private readonly layout: CgroupLayout,
  ) {}

  /** The pod's cgroup directory, or an error saying where it looked. */
  resolve(pod: PodRef): string | Error {
    if (this.layout === "local") {
      const p = join(this.parent, `${pod.namespace}.${pod.name}`);
      return isDir(p) ? p : new Error(`cgroup ${p} does not exist (is the pod running?)`);
    }
    const hit = this.cache.get(pod.uid);
    if (hit && isDir(hit)) return hit;
    const found = findKubeletCgroup(this.parent, pod.uid);
    if (!found) return new Error(`no cgroup for pod uid ${pod.uid} under ${this.parent} (kubelet layout)`);
    this.cache.set(pod.uid, found);
    return found;
  }

  /** Forgets pods no longer present. */
  retain(uids: ReadonlySet<string>): void {
    for (const uid of this.cache.keys()) if (!uids.has(uid)) this.cache.delete(uid);
  }
}

function isDir(p: string): boolean {
  try {
    return statSync(p).isDirectory();
  } catch {
    return false;
  }
}

/** Searches up to three levels below parent for the pod's directory. */
export function findKubeletCgroup(parent: string, uid: string, depth = 3): string | null {
  const names = [`pod${uid}`, `pod${uid.replace(/-/g, "_")}`];
  let entries: string[];
  try {
    entries = readdirSync(parent, { withFileTypes: true })
      .filter((d) => d.isDirectory())
      .map((d) => d.name);
  } catch {
    return null;
  }
  for (const e of entries) {
    const base = e.replace(/\.slice$/, "");
    if (names.some((n) => base === n || base.endsWith(`-${n}`))) return join(parent, e);
  }
  if (depth <= 1) return null;
  for (const e of entries) {
    const found = findKubeletCgroup(join(parent, e), uid, depth - 1);
    if (found) return found;
  }
  return null;
}
