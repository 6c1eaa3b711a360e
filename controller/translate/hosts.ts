/** Resolving the hosts policies name ("reviews", "reviews.shop", "*.shop.svc.cluster.local") to Services. */
import type { Service } from "../api/model.js";

/** Services indexed by every name Kubernetes DNS gives them. */
export class ServiceIndex {
  private readonly byHostname = new Map<string, Service>();

  constructor(
    readonly services: readonly Service[],
    private readonly clusterDomain: string,
  ) {
    for (const s of services) this.byHostname.set(s.hostname, s);
  }

  /**
   * The Service a host names, resolved the way a pod in `fromNamespace` would resolve it:
   * "name" (same namespace), "name.ns", "name.ns.svc", or the full "name.ns.svc.<domain>".
   */
  resolve(host: string, fromNamespace: string): Service | undefined {
    const h = host.toLowerCase().replace(/\.$/, "");
    const parts = h.split(".");
    if (parts.length === 1) return this.byHostname.get(`${h}.${fromNamespace}.svc.${this.clusterDomain}`);
    if (parts.length === 2) return this.byHostname.get(`${h}.svc.${this.clusterDomain}`);
    if (parts.length === 3 && parts[2] === "svc") return this.byHostname.get(`${h}.${this.clusterDomain}`);
    return this.byHostname.get(h);
  }

  /** Services whose FQDN a wildcard host ("*", "*.shop.svc.cluster.local") covers. */
  wildcard(host: string): Service[] {
    if (host === "*") return [...this.services];
    const suffix = host.toLowerCase().slice(1); // "*.x" → ".x"
    return this.services.filter((s) => s.hostname.endsWith(suffix));
  }

  /** The FQDN a host stands for (unknown hosts are returned as written). */
  fqdn(host: string, fromNamespace: string): string {
    return this.resolve(host, fromNamespace)?.hostname ?? host;
  }
}

/**
 * Istio exportTo → namespaces: "." is the object's own namespace, "*" everyone (the default),
 * "~" no one; anything else is a namespace name.
 */
export function exportTo(list: readonly string[], ownNamespace: string): string[] {
  if (list.length === 0) return ["*"];
  if (list.includes("*")) return ["*"];
  return [...new Set(list.filter((n) => n !== "~").map((n) => (n === "." ? ownNamespace : n)))].sort();
}
