/**
 * Helpers for the L7 acceptance tests: Bookinfo on a test cluster, the test apps (httpbin,
 * load client, gRPC) in pods, policy fixtures applied into a namespace, and request metrics.
 */
import { join } from "node:path";
import { clusterUp, requireState, runDetached } from "../../scripts/cluster/cluster.js";
import { type MeshOptions, startMesh } from "../../scripts/cluster/mesh.js";
import { DEFAULT_SPEC } from "../../scripts/cluster/topology.js";
import { BOOKINFO_NS, BOOKINFO_PORT, deployBookinfo } from "../../scripts/demo/bookinfo.js";
import { forceDown, runProbe } from "./cluster.js";
import { counterSum, metrics, vip } from "./mesh.js";
import { waitFor } from "./wait.js";
import { ROOT, weftOk } from "./weft.js";

/** The Istio-shaped policy fixtures (no namespace: applied with -n). */
export const ISTIO = join(ROOT, "test", "fixtures", "istio");
/** The Gateway API fixtures (no namespace: applied with -n). */
export const GATEWAY_API = join(ROOT, "test", "fixtures", "gateway-api");
/** The httpbin-like test server. */
export const HTTPBIN = join(ROOT, "test", "helpers", "httpbin.mjs");
/** The fortio-like load client. */
export const LOAD_CLIENT = join(ROOT, "test", "helpers", "load-client.mjs");
/** The gRPC test server and client. */
export const GRPC_APP = join(ROOT, "test", "helpers", "grpc-app.mjs");

/** What load-client.mjs prints. */
export interface LoadResult {
  requests: number;
  codes: Record<string, number>;
  byHeader: Record<string, number>;
  /** "<METHOD> <status>" → count. */
  byMethod: Record<string, number>;
  errors: Record<string, number>;
  ms: number;
  seq?: [number, string][];
  last?: { status: number; headers?: Record<string, string>; body?: unknown; ms: number; error?: string };
}

/** What grpc-app.mjs client prints. */
export interface GrpcResult {
  calls: number;
  versions: Record<string, number>;
  statuses: Record<string, number>;
  errors: Record<string, number>;
  ms: number;
}

/** What httpbin.mjs answers on /__stats. */
export interface HttpbinStats {
  name: string;
  total: number;
  attempts: Record<string, number>;
  recent: { method: string; path: string; host: string | null; headers: Record<string, string>; key: string | null }[];
}

/** Applies a fixture file into a namespace (objects without metadata.namespace get it), as `kubectl apply -n`. */
export async function applyIn(cluster: string, ns: string, file: string): Promise<void> {
  await weftOk(["cluster", "apply", "--name", cluster, "-n", ns, "-f", file]);
}

/** Deletes a fixture file's objects from a namespace. */
export async function deleteIn(cluster: string, ns: string, file: string): Promise<void> {
  await weftOk(["cluster", "delete", "--name", cluster, "-n", ns, "-f", file]);
}

/** Runs the load client in a pod; a generous process timeout on top of its own --max-ms bound. */
export function loadClient(cluster: string, from: string, args: string[], timeoutMs = 150_000): Promise<LoadResult> {
  return runProbe<LoadResult>(cluster, from, LOAD_CLIENT, args, timeoutMs);
}

/** Runs the gRPC client in a pod. */
export function grpcClient(cluster: string, from: string, args: string[], timeoutMs = 150_000): Promise<GrpcResult> {
  return runProbe<GrpcResult>(cluster, from, GRPC_APP, ["client", ...args], timeoutMs);
}

/** One GET from a pod; its status, headers, JSON body and duration. */
export async function getOnce(
  cluster: string,
  from: string,
  url: string,
  headers: string[] = [],
): Promise<NonNullable<LoadResult["last"]>> {
  const r = await loadClient(cluster, from, ["--url", url, "--last", ...headers.flatMap((h) => ["--header", h])]);
  if (!r.last) throw new Error(`GET ${url} from ${from}: no result`);
  return r.last;
}

/** Starts httpbin.mjs in a pod (recorded, so cluster down stops it). */
export async function startHttpbin(cluster: string, pod: string, port: number, args: string[] = []): Promise<void> {
  const name = pod.split("/")[1] ?? pod;
  await runDetached(cluster, pod, [process.execPath, HTTPBIN, "--port", String(port), "--name", name, ...args], { what: `httpbin ${pod}` });
}

/** Starts the gRPC server in a pod. */
export async function startGrpcServer(cluster: string, pod: string, port: number, version: string): Promise<void> {
  const name = pod.split("/")[1] ?? pod;
  await runDetached(cluster, pod, [process.execPath, GRPC_APP, "server", "--port", String(port), "--version", version, "--name", name], {
    what: `grpc ${pod}`,
  });
}

/** httpbin's record of what it received, asked from a pod (directly to the pod's address). */
export async function httpbinStats(cluster: string, from: string, ip: string, port: number, key?: string): Promise<HttpbinStats> {
  const q = key === undefined ? "" : `?key=${encodeURIComponent(key)}`;
  const last = await getOnce(cluster, from, `http://${ip}:${port}/__stats${q}`);
  if (last.status !== 200) throw new Error(`httpbin stats at ${ip}:${port}: HTTP ${last.status} ${last.error ?? ""}`);
  return last.body as HttpbinStats;
}

/** The node a pod runs on (1-based). */
export function nodeOf(cluster: string, ns: string, name: string): number {
  const p = requireState(cluster).pods.find((x) => x.namespace === ns && x.name === name);
  if (!p) throw new Error(`no pod ${ns}/${name}`);
  return p.node;
}

/** Sum of istio_requests_total{reporter="source", …labels} on a node's agent (its 15020). */
export async function sourceRequests(cluster: string, node: number, labels: Record<string, string>): Promise<number> {
  return counterSum(await metrics(cluster, node), "istio_requests_total", { reporter: "source", ...labels });
}

/** A service's in-cluster host name, as the destination_service label spells it. */
export function fqdn(ns: string, name: string): string {
  return `${name}.${ns}.svc.cluster.local`;
}

/** Percentage of `part` in `counts` (0 when there were none). */
export function percent(counts: Record<string, number>, part: string): number {
  const total = Object.values(counts).reduce((a, b) => a + b, 0);
  return total === 0 ? 0 : (100 * (counts[part] ?? 0)) / total;
}

/** The productpage URL (through its service VIP). */
export function productpageUrl(cluster: string, query = ""): string {
  return `http://${vip(cluster, BOOKINFO_NS, "productpage")}:${BOOKINFO_PORT}/productpage${query}`;
}

/** The pod tests send Bookinfo requests from (Bookinfo's traffic pod, with no traffic of its own). */
export const BOOKINFO_CLIENT = `${BOOKINFO_NS}/traffic`;

/**
 * A 2-node cluster with the controller, agents and Bookinfo (no background traffic), waiting
 * until productpage answers with every reviews version reachable through the mesh. `beforeMesh`
 * runs once the cluster's namespaces exist, before the controller and agents start (e.g. a
 * collector the agents send to), and may add mesh options.
 */
export async function bookinfoUp(cluster: string, beforeMesh?: () => Promise<MeshOptions>): Promise<void> {
  await forceDown(cluster);
  await clusterUp({ ...DEFAULT_SPEC, name: cluster, podsPerNode: 0 });
  const extra = (await beforeMesh?.()) ?? {};
  await startMesh(cluster, { debounce: "20ms", ...extra });
  await deployBookinfo(cluster, { traffic: false });
  await waitFor(
    "productpage answering with details and reviews",
    async () => {
      const r = await getOnce(cluster, BOOKINFO_CLIENT, productpageUrl(cluster));
      const body = r.body as { calls?: { details?: { status: number }; reviews?: { status: number } } } | undefined;
      if (r.status !== 200 || body?.calls?.details?.status !== 200 || body.calls.reviews?.status !== 200)
        throw new Error(`productpage: HTTP ${r.status} ${JSON.stringify(r.body ?? r.error).slice(0, 300)}`);
      return true;
    },
    30_000,
    200,
  );
}

/** Counts which reviews version answered productpage over `total` requests sent by `c` keep-alive connections. */
export async function reviewsSplit(cluster: string, total: number, c: number, headers: string[] = [], query = ""): Promise<LoadResult> {
  return loadClient(cluster, BOOKINFO_CLIENT, [
    "--url",
    productpageUrl(cluster, query),
    "-c",
    String(c),
    "-n",
    String(Math.ceil(total / c)),
    "--count-header",
    "x-weft-reviews-version",
    "--max-ms",
    "120000",
    ...headers.flatMap((h) => ["--header", h]),
  ]);
}

/**
 * Waits until a fresh sample of productpage requests satisfies `ok` (the route is in effect);
 * on timeout the error names the last sample, so a failure says what routing was seen instead.
 */
export async function waitForReviews(
  cluster: string,
  what: string,
  ok: (byVersion: Record<string, number>) => boolean,
  opts: { sample?: number; headers?: string[]; query?: string; timeoutMs?: number } = {},
): Promise<void> {
  await waitFor(
    what,
    async () => {
      const r = await reviewsSplit(cluster, opts.sample ?? 60, 6, opts.headers ?? [], opts.query ?? "");
      if (!ok(r.byHeader)) throw new Error(`reviews versions seen: ${JSON.stringify(r.byHeader)} codes ${JSON.stringify(r.codes)}`);
      return true;
    },
    opts.timeoutMs ?? 20_000,
    200,
  );
}
