/**
 * The weft mesh as a measured path: the client pod dials the server pod's own address; the
 * connect hook on node 1 hands the connection to node 1's agent, which carries it over pooled
 * HBONE (mTLS HTTP/2) to node 2's agent, which delivers it to the server pod.
 *
 *   client pod ──captured──▶ agent node1 (15001) ══HBONE mTLS 1.3══▶ agent node2 (15008) ──▶ server pod
 *
 * The agents' CPU and RSS (all threads, proxy workers included) are the path's cost; the
 * controller is control plane and not counted. WEFT_BENCH_PROXY_WORKERS sets the agents'
 * worker threads (default 0: the proxy runs in the agent's own thread).
 */
import { existsSync } from "node:fs";
import { adminGet } from "../../common/admin-server.js";
import { runSync } from "../../native/exec.js";
import { agentSocket, type MeshProcesses, startMesh, weftBin } from "../../scripts/cluster/mesh.js";
import type { BenchVariant, VariantContext, VariantSetup } from "../lib/variant.js";

/** Proxy worker threads per agent for this run. */
export function benchProxyWorkers(env = process.env): number {
  const n = Number(env.WEFT_BENCH_PROXY_WORKERS ?? "0");
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

/** A fresh weft variant. */
export function weftVariant(): BenchVariant {
  let mesh: MeshProcesses | null = null;
  let ctxRef: VariantContext | null = null;
  return {
    name: "weft",
    title: "weft L4 (HBONE)",
    unavailable: () => (existsSync(weftBin()) ? null : `${weftBin()} is missing: run 'npm run build'`),
    async setup(ctx): Promise<VariantSetup> {
      ctxRef = ctx;
      const workers = benchProxyWorkers();
      await ctx.cluster.labelNamespace(ctx.client.namespace, ["weft.dev/mesh=enabled"]);
      mesh = await startMesh(ctx.cluster.name, { proxyWorkers: workers, logLevel: "warn" });
      // Ready agents hold the certificates; also wait until node 1 has captured the client pod.
      await until("the client pod to be captured on node 1", 15_000, async () => {
        const r = await adminGet(agentSocket(ctx.cluster.name, 1), "/status", 2000);
        const redirect = (JSON.parse(r.body) as { components?: { redirect?: { desired?: number } } }).components?.redirect;
        return (redirect?.desired ?? 0) >= 1;
      });
      ctx.log(`weft: controller and 2 agents ready (${workers} proxy workers each)`);
      return {
        target: { host: ctx.server.ip, port: ctx.serverPort },
        proxyPids: [...mesh.agents.values()].map((a) => a.pid),
        info: {
          "weft proxy workers per agent": String(workers),
          "weft HBONE": "TLS 1.3, ECDSA P-256 SPIFFE certificates, HTTP/2 CONNECT, pooled",
        },
      };
    },
    async teardown() {
      const ctx = ctxRef;
      if (!ctx) return;
      // Leave the mesh before the agents go, so no pod is left captured with no proxy behind it.
      await ctx.cluster.labelNamespace(ctx.client.namespace, ["weft.dev/mesh-"]).catch(() => undefined);
      if (mesh) {
        for (const p of [...mesh.agents.values(), mesh.controller]) await ctx.cluster.stop(p);
        for (const n of mesh.agents.keys()) {
          runSync("sh", [
            "-c",
            `${process.execPath} ${weftBin()} agent uninstall --pin-dir /sys/fs/bpf/${ctx.cluster.name}-node${n} >/dev/null 2>&1 || true`,
          ]);
        }
      }
      mesh = null;
    },
  };
}
