/** A small mesh for L7 router tests, built by the controller's own translate() from Kubernetes-shaped objects. */
import type { RouteDecision, RouteInput } from "../../agent/proxy/l7/router.js";
import { MeshView } from "../../agent/state/view.js";
import type { KubeObject } from "../../controller/api/kube-types.js";
import type { MeshSnapshotData, Workload } from "../../controller/api/model.js";
import { translate } from "../../controller/translate/index.js";
import { custom, namespace, node, objects, pod, service } from "./control-objects.js";

const v1 = pod({ name: "web-v1", ns: "shop", node: "n1", ip: "10.244.1.2", labels: { app: "web", version: "v1" } });
const v2 = pod({ name: "web-v2", ns: "shop", node: "n1", ip: "10.244.1.3", labels: { app: "web", version: "v2" } });
const shadowPod = pod({ name: "shadow", ns: "shop", node: "n1", ip: "10.244.1.4" });
const apiPod = pod({ name: "api", ns: "shop", node: "n1", ip: "10.244.1.5" });
const clientPod = pod({ name: "client", ns: "client", node: "n1", ip: "10.244.1.10", labels: { app: "client", tier: "front" } });
const otherPod = pod({ name: "other", ns: "other", node: "n1", ip: "10.244.1.11" });
const base: KubeObject[] = [
  namespace("shop"),
  namespace("client"),
  namespace("other"),
  node("n1", "10.250.0.11"),
  v1,
  v2,
  shadowPod,
  apiPod,
  clientPod,
  otherPod,
  ...service("web", "shop", "10.96.0.10", [{ name: "http", port: 80, targetPort: 8080 }], [v1, v2]),
  ...service("shadow", "shop", "10.96.0.11", [{ name: "http", port: 8000, targetPort: 8080 }], [shadowPod]),
  ...service(
    "api",
    "shop",
    "10.96.0.12",
    [
      { name: "http", port: 80, targetPort: 8080 },
      { name: "admin", port: 9090, targetPort: 9090 },
    ],
    [apiPod],
  ),
];
/** A VirtualService. */
export const vs = (name: string, spec: unknown, ns = "shop", createdAt = "2026-01-01T00:00:00Z") =>
  custom("networking.istio.io/v1", "VirtualService", name, ns, spec, { creationTimestamp: createdAt });
/** An HTTPRoute. */
export const hr = (name: string, spec: unknown, ns = "shop", createdAt = "2026-01-01T00:00:00Z") =>
  custom("gateway.networking.k8s.io/v1", "HTTPRoute", name, ns, spec, { creationTimestamp: createdAt });
/** A DestinationRule in shop. */
export const dr = (name: string, spec: unknown) => custom("networking.istio.io/v1", "DestinationRule", name, "shop", spec);
/** The GAMMA parentRef to shop/web port 80. */
export const parent = { group: "", kind: "Service", name: "web", port: 80 };
/** shop/web subsets v1 and v2 (v2 with its own policy and a port-level entry). */
export const subsets = dr("web", {
  host: "web",
  trafficPolicy: { loadBalancer: { simple: "ROUND_ROBIN" }, outlierDetection: { consecutive5xxErrors: 5 } },
  subsets: [
    { name: "v1", labels: { version: "v1" } },
    {
      name: "v2",
      labels: { version: "v2" },
      trafficPolicy: {
        loadBalancer: { simple: "LEAST_REQUEST" },
        portLevelSettings: [{ port: { number: 80 }, connectionPool: { tcp: { maxConnections: 7 } } }],
      },
    },
  ],
});

/** A translated mesh and its view. */
export interface World {
  view: MeshView;
  data: MeshSnapshotData;
  client: Workload;
  other: Workload;
}

/** Translates the objects as the controller does and builds the agent's view of them. */
export function world(...extra: KubeObject[]): World {
  const data = translatedSnapshot([...base, ...extra]);
  const view = new MeshView(data);
  const byName = (n: string) => data.workloads.find((w) => w.name === n) as Workload;
  return { view, data, client: byName("client"), other: byName("other") };
}

/** The agent's snapshot of node n1 for these objects, translated as the controller does (throws on errors). */
export function translatedSnapshot(objs: readonly KubeObject[], version = "1"): MeshSnapshotData {
  const m = translate(objects(objs));
  const errors = m.diagnostics.filter((d) => d.severity === "error");
  if (errors.length > 0) throw new Error(`fixture does not translate: ${JSON.stringify(errors)}`);
  return {
    version,
    nodeName: "n1",
    trustDomain: "cluster.local",
    rootNamespace: "weft-system",
    workloads: m.workloads,
    services: m.services,
    authorizationPolicies: [],
    peerAuthentications: [],
    routes: m.routes,
    destinationPolicies: m.destinationPolicies,
  };
}

/** A request from the client to a service port (shop/web:80 unless told). */
export function req(w: World, p: Partial<RouteInput> & { vip?: string; port?: number } = {}): RouteInput {
  const { vip, port, ...rest } = p;
  const service = w.view.serviceByAddress(vip ?? "10.96.0.10", port ?? 80);
  if (!service) throw new Error("fixture: no such service port");
  return { method: "GET", path: "/", authority: "web.shop.svc.cluster.local", headers: {}, service, source: w.client, ...rest };
}

/** The decision as a forward; throws naming what it was otherwise. */
export function forward(d: RouteDecision) {
  if (d.kind !== "forward") throw new Error(`expected forward, got ${JSON.stringify(d)}`);
  return d;
}
/** Endpoint addresses of a forward decision. */
export const addrs = (d: RouteDecision) => forward(d).cluster.endpoints.map((e) => e.address);
