/**
 * Deploys the demo: namespace `bookinfo` (enrolled by label) with productpage, details,
 * reviews v1/v2/v3 and ratings spread over the nodes so calls cross nodes, a traffic generator,
 * and a non-mesh namespace `legacy` with a client pod for contrast.
 */
import { join } from "node:path";
import { WEFT_ROOT } from "../../agent/version.js";
import { LABELS } from "../../controller/api/kube-types.js";
import { addPod, addService, label, requireState, runDetached, serviceEnv } from "../cluster/cluster.js";

/** One demo workload. */
interface DemoPod {
  name: string;
  app: string;
  version: string;
  /** 1-based index into the cluster's nodes (wrapped when the cluster has fewer). */
  node: number;
}

/** The Bookinfo pods; reviews' versions sit on different nodes from productpage. */
export const BOOKINFO_PODS: readonly DemoPod[] = [
  { name: "productpage-v1", app: "productpage", version: "v1", node: 1 },
  { name: "details-v1", app: "details", version: "v1", node: 2 },
  { name: "reviews-v1", app: "reviews", version: "v1", node: 1 },
  { name: "reviews-v2", app: "reviews", version: "v2", node: 2 },
  { name: "reviews-v3", app: "reviews", version: "v3", node: 2 },
  { name: "ratings-v1", app: "ratings", version: "v1", node: 1 },
];

/** Namespace of the demo. */
export const BOOKINFO_NS = "bookinfo";
/** The demo's HTTP port (all services). */
export const BOOKINFO_PORT = 9080;

/** Path of the demo app program. */
export function demoAppPath(): string {
  return join(WEFT_ROOT, "dist", "scripts", "demo", "app.js");
}

/** Deploys Bookinfo and (unless `traffic: false`) its traffic; returns the names of what it started. */
export async function deployBookinfo(
  cluster: string,
  opts: { trafficRps?: number; trafficDurationS?: number; traffic?: boolean } = {},
): Promise<string[]> {
  const nodes = requireState(cluster).nodes.length;
  const nodeOf = (n: number) => ((n - 1) % nodes) + 1;
  await label(cluster, "namespace", BOOKINFO_NS, [`${LABELS.mesh}=enabled`]);
  for (const p of BOOKINFO_PODS) {
    await addPod(cluster, {
      namespace: BOOKINFO_NS,
      name: p.name,
      node: nodeOf(p.node),
      labels: { app: p.app, version: p.version },
      serviceAccount: `bookinfo-${p.app}`,
    });
  }
  for (const app of ["productpage", "details", "reviews", "ratings"]) {
    await addService(cluster, {
      namespace: BOOKINFO_NS,
      name: app,
      ports: [{ name: "http", port: BOOKINFO_PORT, targetPort: BOOKINFO_PORT, protocol: "TCP", appProtocol: "http" }],
      selector: { app },
    });
  }
  await addPod(cluster, { namespace: BOOKINFO_NS, name: "traffic", node: 1, labels: { app: "traffic" }, serviceAccount: "traffic" });
  await addPod(cluster, { namespace: "legacy", name: "client", node: nodeOf(2), labels: { app: "client" }, serviceAccount: "default" });

  const env = { ...process.env, ...serviceEnv(requireState(cluster), BOOKINFO_NS) };
  const started: string[] = [];
  for (const p of BOOKINFO_PODS) {
    await runDetached(
      cluster,
      `${BOOKINFO_NS}/${p.name}`,
      [process.execPath, demoAppPath(), "--role", p.app, "--version", p.version, "--port", String(BOOKINFO_PORT)],
      {
        what: `app ${BOOKINFO_NS}/${p.name}`,
        env: { ...env, POD_NAME: p.name },
      },
    );
    started.push(`${BOOKINFO_NS}/${p.name}`);
  }
  // Tests count every request, so they keep the traffic pod as a quiet client of their own.
  if (opts.traffic === false) return started;
  await runDetached(
    cluster,
    `${BOOKINFO_NS}/traffic`,
    [
      process.execPath,
      demoAppPath(),
      "--role",
      "loadgen",
      "--target",
      "productpage",
      "--rps",
      String(opts.trafficRps ?? 2),
      "--duration-s",
      String(opts.trafficDurationS ?? 3600),
    ],
    { what: `traffic ${BOOKINFO_NS}`, env: { ...env, POD_NAME: "traffic" } },
  );
  started.push(`${BOOKINFO_NS}/traffic`);
  return started;
}
