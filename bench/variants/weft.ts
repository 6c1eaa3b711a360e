/**
 * The weft mesh as measured paths. Both share one mesh (controller and one agent per node):
 *
 *   weft (L4)  the client pod dials the server pod's own address; the connect hook on node 1 hands
 *              the connection to node 1's agent, which carries its bytes over pooled HBONE.
 *   weft-l7    the client pod dials a Service VIP whose port declares appProtocol http and that a
 *              VirtualService routes; node 1's agent parses each request, routes it and sends it
 *              over a reused upstream HTTP/1.1 connection inside HBONE.
 *   weft-l7-authz1 weft-l7 plus 1 AuthorizationPolicy with HTTP attributes on the server pod: the
 *              destination parses every request (the baseline of the policies' own cost)
 *   weft-l7-authz  weft-l7 plus 100 AuthorizationPolicies with HTTP attributes on the server pod
 *              (bench/lib/authz-policies.ts): node 2's agent parses and authorizes every request
 *              before it reaches the pod. Compared with weft-l7 (no policy) in the same rounds.
 *
 *   client pod ──captured──▶ agent node1 (15001) ══HBONE mTLS 1.3══▶ agent node2 (15008) ──▶ server pod
 *
 * Setup proves which path a variant takes: node 1's agent must count the L7 variant's check
 * request in istio_requests_total, and must not count the L4 variant's; with policies, node 2's
 * agent must count it as reporter="destination" and answer a path no policy allows with 403.
 *
 * The agents' CPU and RSS (all threads, proxy workers included) are each path's cost; CPU is
 * taken per run, and runs never overlap, so sharing the agents does not mix the figures. The
 * controller is control plane and not counted. WEFT_BENCH_PROXY_WORKERS sets the agents'
 * worker threads (default 0: the proxy runs in the agent's own thread).
 */
import { existsSync } from "node:fs";
import { parseAllDocuments } from "yaml";
import { adminGet } from "../../common/admin-server.js";
import { runSync } from "../../native/exec.js";
import { addService, removeService, requireState } from "../../scripts/cluster/cluster.js";
import { agentSocket, type MeshProcesses, startMesh, weftBin } from "../../scripts/cluster/mesh.js";
import { applyUserObjects, deleteUserObjects } from "../../scripts/cluster/user-objects.js";
import { authzPoliciesYaml } from "../lib/authz-policies.js";
import type { BenchCluster } from "../lib/cluster.js";
import { SMALL_PATH } from "../lib/upstream.js";
import type { BenchVariant, VariantContext, VariantSetup } from "../lib/variant.js";

/** The agents' Prometheus endpoint in each node's netns (the agent's default --metrics-address). */
const METRICS_URL = "http://127.0.0.1:15020/metrics";
/** The Service the L7 variant's client calls. */
const L7_SERVICE = "server";
/** AuthorizationPolicies on the weft-l7-authz variant's server pod. */
export const AUTHZ_POLICY_COUNT = 100;

/** The VirtualService that puts the L7 variant's calls on the L7 path (one rule, the service itself). */
function routeYaml(namespace: string): string {
  return `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: ${L7_SERVICE}, namespace: ${namespace}}
spec:
  hosts: [${L7_SERVICE}]
  http:
  - route:
    - destination: {host: ${L7_SERVICE}}
`;
}

/** The environment variable that sets the agents' proxy worker threads for a bench run. */
export const PROXY_WORKERS_ENV = "WEFT_BENCH_PROXY_WORKERS";

/** Proxy worker threads per agent for this run. */
export function benchProxyWorkers(env = process.env): number {
  const n = Number(env[PROXY_WORKERS_ENV] ?? "0");
  return Number.isInteger(n) && n >= 0 && n <= 16 ? n : 0;
}

async function until(what: string, timeoutMs: number, check: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    try {
      if (await check()) return;
    } catch {
      // not yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** One mesh per cluster, started by the first weft variant and stopped after the last. */
const shared = new Map<string, { mesh: Promise<MeshProcesses>; users: number }>();

async function acquireMesh(ctx: VariantContext, workers: number): Promise<MeshProcesses> {
  let entry = shared.get(ctx.cluster.name);
  if (!entry) {
    entry = { mesh: startMesh(ctx.cluster.name, { proxyWorkers: workers, logLevel: "warn" }), users: 0 };
    shared.set(ctx.cluster.name, entry);
    entry.mesh.catch(() => shared.delete(ctx.cluster.name));
  }
  entry.users++;
  return entry.mesh;
}

async function releaseMesh(cluster: BenchCluster): Promise<void> {
  const entry = shared.get(cluster.name);
  if (!entry || --entry.users > 0) return;
  shared.delete(cluster.name);
  const mesh = await entry.mesh.catch(() => null);
  if (!mesh) return;
  for (const p of [...mesh.agents.values(), mesh.controller]) await cluster.stop(p);
  for (const n of mesh.agents.keys()) {
    runSync("sh", [
      "-c",
      `${process.execPath} ${weftBin()} agent uninstall --pin-dir /sys/fs/bpf/${cluster.name}-node${n} >/dev/null 2>&1 || true`,
    ]);
  }
}

async function capturedPods(ctx: VariantContext): Promise<number> {
  const r = await adminGet(agentSocket(ctx.cluster.name, 1), "/status", 2000);
  return (JSON.parse(r.body) as { components?: { redirect?: { desired?: number } } }).components?.redirect?.desired ?? 0;
}

/**
 * Requests an agent has counted at L7 for a destination namespace: the sum of its
 * istio_requests_total series whose destination_service_namespace is `namespace` (and whose
 * reporter is `reporter`, when given).
 */
export function l7RequestCount(metricsText: string, namespace: string, reporter?: "source" | "destination"): number {
  let total = 0;
  for (const line of metricsText.split("\n")) {
    if (!line.startsWith("istio_requests_total{")) continue;
    if (!line.includes(`destination_service_namespace="${namespace}"`)) continue;
    if (reporter && !line.includes(`reporter="${reporter}"`)) continue;
    const v = Number(line.slice(line.lastIndexOf(" ") + 1));
    if (Number.isFinite(v)) total += v;
  }
  return total;
}

async function l7Requests(ctx: VariantContext, node = "node1", reporter?: "destination"): Promise<number> {
  const r = await ctx.cluster.exec(node, ["curl", "-sf", "--max-time", "5", METRICS_URL], { timeoutMs: 10_000 });
  return l7RequestCount(r.stdout, ctx.client.namespace, reporter);
}

/** The variant's objects in the file store: its route, and with policies its AuthorizationPolicies. */
function userObjectsYaml(ctx: VariantContext, policyCount: number): string {
  const route = routeYaml(ctx.client.namespace);
  if (policyCount === 0) return route;
  const policies = authzPoliciesYaml(policyCount, {
    namespace: ctx.client.namespace,
    selector: { app: ctx.server.name },
    allowPaths: [SMALL_PATH],
  });
  return `${route}---\n${policies}`;
}

/**
 * A fresh weft variant: the L4 path (pod IP), the L7 path (a Service port declared http), or the
 * L7 path with AuthorizationPolicies checked per request at the destination.
 */
export function weftVariant(layer: "l4" | "l7" | "l7-authz1" | "l7-authz" = "l4", serverNode: 1 | 2 = 2): BenchVariant {
  let ctxRef: VariantContext | null = null;
  let holdsMesh = false;
  let service = false;
  const l7 = layer !== "l4";
  const policyCount = layer === "l7-authz" ? AUTHZ_POLICY_COUNT : layer === "l7-authz1" ? 1 : 0;
  const authz = policyCount > 0;
  const sameNode = serverNode === 1;
  if (sameNode && l7) throw new Error("weft bench variant: the same-node variant measures the L4 path only");
  return {
    name: sameNode ? "weft-same-node" : layer === "l4" ? "weft" : layer === "l7" ? "weft-l7" : `weft-${layer}`,
    title: authz
      ? `weft L7, ${policyCount} AuthorizationPolic${policyCount === 1 ? "y" : "ies"} at the destination`
      : l7
        ? "weft L7 (HTTP over HBONE)"
        : sameNode
          ? "weft L4, same node (kernel splice)"
          : "weft L4 (HBONE)",
    serverNode,
    unavailable: () => (existsSync(weftBin()) ? null : `${weftBin()} is missing: run 'npm run build'`),
    async setup(ctx): Promise<VariantSetup> {
      ctxRef = ctx;
      const workers = benchProxyWorkers();
      const capturedBefore = shared.has(ctx.cluster.name) ? await capturedPods(ctx).catch(() => 0) : 0;
      await ctx.cluster.labelNamespace(ctx.client.namespace, ["weft.dev/mesh=enabled"]);
      const mesh = await acquireMesh(ctx, workers);
      holdsMesh = true;
      // Ready agents hold the certificates; also wait until node 1 has captured this client pod.
      await until("the client pod to be captured on node 1", 15_000, async () => (await capturedPods(ctx)) > capturedBefore);
      let target = { host: ctx.server.ip, port: ctx.serverPort };
      if (l7) {
        const svc = await addService(ctx.cluster.name, {
          namespace: ctx.client.namespace,
          name: L7_SERVICE,
          ports: [{ name: "http", port: ctx.serverPort, targetPort: ctx.serverPort, protocol: "TCP", appProtocol: "http" }],
          selector: { app: "server" },
        });
        service = true;
        // Without a route table or DestinationRule a service port stays on the L4 splice (the
        // design's fast path): a plain VirtualService to the same service makes the L7 path run.
        applyUserObjects(requireState(ctx.cluster.name).storeDir, parseAllDocuments(userObjectsYaml(ctx, policyCount)), "bench");
        const vip = svc.vip;
        await until(`node 1's agent to hold service ${ctx.client.namespace}/${L7_SERVICE} with its endpoint`, 15_000, async () => {
          const r = await adminGet(agentSocket(ctx.cluster.name, 1), "/config_dump", 2000);
          const services = (JSON.parse(r.body) as { services?: { vips: string[]; endpoints: unknown[] }[] }).services ?? [];
          return services.some((s) => s.vips.includes(vip) && s.endpoints.length > 0);
        });
        target = { host: vip, port: ctx.serverPort };
      }
      await assertLayer(ctx, target, l7);
      if (sameNode) await assertKernelSplice(ctx, target);
      if (authz) await assertPolicies(ctx, target);
      ctx.log(`weft: controller and 2 agents ready (${workers} proxy workers each), ${l7 ? "L7 via the Service VIP" : "L4 to the pod IP"}`);
      return {
        target,
        proxyPids: [...mesh.agents.values()].map((a) => a.pid),
        info: {
          "weft proxy workers per agent": String(workers),
          ...(sameNode
            ? {
                "weft same node":
                  "client and server pods on node 1: node 1's agent decides the connection, dials the pod from the client's address and pairs the two sockets in its sockhash (sk_skb verdict); checked by weft_same_node_connections_total{carrier=\"kernel\"}",
              }
            : { "weft HBONE": "TLS 1.3, ECDSA P-256 SPIFFE certificates, HTTP/2 CONNECT, pooled" }),
          ...(l7
            ? {
                "weft L7": `the client calls Service ${ctx.client.namespace}/${L7_SERVICE} (VIP ${target.host}, port declares appProtocol http); a VirtualService routes it; node 1's agent routes every request over reused upstream HTTP/1.1 connections in HBONE; checked by its istio_requests_total`,
              }
            : {}),
          ...(authz
            ? {
                "weft L7 authorization": `${policyCount} AuthorizationPolic${policyCount === 1 ? "y" : "ies"} with HTTP attributes on the server pod (${policyCount === 1 ? "an ALLOW admitting the client" : "half DENY that never match, then ALLOWs of which only the last admits the client"}): node 2's agent checks every request; checked by its reporter="destination" count and a 403 for a path no policy allows`,
              }
            : {}),
        },
      };
    },
    async teardown() {
      const ctx = ctxRef;
      if (!ctx) return;
      if (service) {
        service = false;
        await removeService(ctx.cluster.name, ctx.client.namespace, L7_SERVICE).catch(() => undefined);
        try {
          deleteUserObjects(requireState(ctx.cluster.name).storeDir, parseAllDocuments(userObjectsYaml(ctx, policyCount)), "bench");
        } catch {
          // the cluster is being removed anyway
        }
      }
      // Leave the mesh before the agents go, so no pod is left captured with no proxy behind it.
      await ctx.cluster.labelNamespace(ctx.client.namespace, ["weft.dev/mesh-"]).catch(() => undefined);
      if (holdsMesh) {
        holdsMesh = false;
        await releaseMesh(ctx.cluster);
      }
    },
  };
}

/** Same-node connections node 1's agent handed to the kernel splice. */
export function kernelSplicedCount(metricsText: string): number {
  let total = 0;
  for (const line of metricsText.split("\n")) {
    if (!line.startsWith('weft_same_node_connections_total{carrier="kernel"}')) continue;
    const v = Number(line.slice(line.lastIndexOf(" ") + 1));
    if (Number.isFinite(v)) total += v;
  }
  return total;
}

/** One request to the same-node pod must be carried by the kernel splice, or the row measures the proxy's copy. */
async function assertKernelSplice(ctx: VariantContext, target: { host: string; port: number }): Promise<void> {
  const count = async () => {
    const r = await ctx.cluster.exec("node1", ["curl", "-sf", "--max-time", "5", METRICS_URL], { timeoutMs: 10_000 });
    return kernelSplicedCount(r.stdout);
  };
  const before = await count();
  const pod = `${ctx.client.namespace}/${ctx.client.name}`;
  await ctx.cluster.exec(pod, ["curl", "-sf", "-o", "/dev/null", "--max-time", "5", `http://${target.host}:${target.port}${SMALL_PATH}`], {
    timeoutMs: 10_000,
  });
  await until("node 1's agent to count the connection as spliced in the kernel", 5000, async () => (await count()) > before);
}

/**
 * One request through the path, then node 1's request counter for this namespace: it must grow
 * on the L7 path and stay put on the L4 path, or the rows would measure the wrong thing.
 */
async function assertLayer(ctx: VariantContext, target: { host: string; port: number }, l7: boolean): Promise<void> {
  const url = `http://${target.host}:${target.port}${SMALL_PATH}`;
  const deadline = Date.now() + 15_000;
  for (;;) {
    const before = await l7Requests(ctx);
    const pod = `${ctx.client.namespace}/${ctx.client.name}`;
    const r = await ctx.cluster.exec(pod, ["curl", "-sf", "-o", "/dev/null", "--max-time", "5", url], {
      allowFailure: true,
      timeoutMs: 10_000,
    });
    // Metrics are updated when a request finishes; the agent may count it a moment after curl ends.
    let after = before;
    if (r.code === 0) {
      const settle = Date.now() + 2000;
      // On the L4 path the whole window passes: a request wrongly taken at L7 would show in it.
      do {
        await new Promise((res) => setTimeout(res, l7 ? 50 : 250));
        after = await l7Requests(ctx);
        if (after > before || (!l7 && Date.now() > settle - 1500)) break;
      } while (Date.now() < settle);
      if (l7 && after > before) return;
      if (!l7 && after === before) return;
      if (!l7) throw new Error(`the L4 variant's request to ${url} was handled at L7 (istio_requests_total grew ${before} → ${after})`);
    }
    if (Date.now() > deadline)
      throw new Error(
        r.code === 0
          ? `the request to ${url} was not handled at L7: node 1's istio_requests_total for ${ctx.client.namespace} stayed at ${before}`
          : `no answer from ${url} through weft (curl exit ${r.code})`,
      );
    await new Promise((res) => setTimeout(res, 200));
  }
}

/**
 * With policies: node 2's agent must count a request as reporter="destination" (its HTTP server
 * took it) and must answer a path no ALLOW policy names with 403, or the row would measure a path
 * where the policies are not in force.
 */
async function assertPolicies(ctx: VariantContext, target: { host: string; port: number }): Promise<void> {
  const pod = `${ctx.client.namespace}/${ctx.client.name}`;
  const base = `http://${target.host}:${target.port}`;
  await until(
    `node 2's agent to enforce the ${AUTHZ_POLICY_COUNT} AuthorizationPolicies (403 for a path none allows)`,
    20_000,
    async () => {
      const r = await ctx.cluster.exec(
        pod,
        ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "5", `${base}/not-allowed`],
        {
          allowFailure: true,
          timeoutMs: 10_000,
        },
      );
      return r.stdout.trim() === "403";
    },
  );
  const before = await l7Requests(ctx, "node2", "destination");
  await until('node 2\'s agent to count an allowed request as reporter="destination"', 10_000, async () => {
    await ctx.cluster.exec(pod, ["curl", "-sf", "-o", "/dev/null", "--max-time", "5", `${base}${SMALL_PATH}`], { timeoutMs: 10_000 });
    return (await l7Requests(ctx, "node2", "destination")) > before;
  });
}
