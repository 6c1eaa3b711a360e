/**
 * The baseline a mesh is judged against: one HAProxy per node netns, as a node-level mTLS tunnel.
 *
 *   client pod ──plain──▶ haproxy node1 (10.244.1.1:<port>) ══mTLS 1.3══▶ haproxy node2 (10.250.0.12:16443) ──plain──▶ server pod
 *
 * Both run in their node's system cgroup (as an agent would), one thread each, ECDSA P-256
 * certificates from a throwaway CA. Before it reports ready, the handshake is checked from node 1
 * with openssl so the report can say what was negotiated.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { errorMessage } from "../../common/errors.js";
import { which } from "../../native/exec.js";
import type { ProcessRecord } from "../../scripts/cluster/state.js";
import { haproxyConfig } from "../lib/haproxy-config.js";
import { makeCa, makeLeaf, parseSClientBrief } from "../lib/pki.js";
import { openFilesHardLimit } from "../lib/proc-stats.js";
import type { BenchVariant, VariantContext, VariantSetup } from "../lib/variant.js";

/** Port of the server half's mTLS listener on node 2. */
export const TUNNEL_PORT = 16443;
/** The HTTP-mode pair's ports: it runs beside the TCP pair on the same nodes. */
export const HTTP_TUNNEL_PORT = 16444;
const HTTP_LISTEN_OFFSET = 10;
/**
 * Connection limit of each half: the idle-connection benchmark's 10k plus headroom, but within
 * the open-files limit, as HAProxy in TCP mode needs two descriptors per connection.
 */
function maxConnections(): number {
  return Math.min(30_000, Math.floor((openFilesHardLimit() - 200) / 2));
}

/** A fresh HAProxy-pair variant: TCP mode (L4), or HTTP mode (L7, the weft L7 path's baseline). */
export function haproxyVariant(mode: "tcp" | "http" = "tcp"): BenchVariant {
  let procs: ProcessRecord[] = [];
  let ctxRef: VariantContext | null = null;
  const http = mode === "http";
  return {
    name: http ? "haproxy-http" : "haproxy",
    title: http ? "HAProxy mTLS pair, HTTP mode" : "HAProxy mTLS pair",
    unavailable: () => {
      const missing = ["haproxy", "openssl"].filter((t) => !which(t));
      return missing.length
        ? `${missing.join(" and ")} not installed (apt-get install -y ${missing.join(" ")}; 'npm run bench' installs them)`
        : null;
    },
    async setup(ctx): Promise<VariantSetup> {
      ctxRef = ctx;
      const dir = join(ctx.workDir, http ? "haproxy-http" : "haproxy");
      mkdirSync(dir, { recursive: true, mode: 0o700 });
      const serverName = "node2.weft-bench.local";
      const node2Ip = ctx.cluster.nodeIp(2);
      const ca = await makeCa(dir, "weft bench CA");
      const node1 = await makeLeaf(dir, ca, "node1.weft-bench.local");
      const node2 = await makeLeaf(dir, ca, serverName, node2Ip);
      const limit = maxConnections();
      const listen = { host: ctx.cluster.podGateway(1), port: ctx.serverPort + (http ? HTTP_LISTEN_OFFSET : 0) };
      const tunnel = { host: node2Ip, port: http ? HTTP_TUNNEL_PORT : TUNNEL_PORT };
      const halves = [
        {
          node: 1,
          cfg: haproxyConfig({
            role: "client",
            listen,
            upstream: tunnel,
            pem: node1.pem,
            caFile: ca.cert,
            serverName,
            maxConnections: limit,
            mode,
          }),
        },
        {
          node: 2,
          cfg: haproxyConfig({
            role: "server",
            listen: tunnel,
            upstream: { host: ctx.server.ip, port: ctx.serverPort },
            pem: node2.pem,
            caFile: ca.cert,
            serverName,
            maxConnections: limit,
            mode,
          }),
        },
      ];
      for (const h of halves) {
        const file = join(dir, `node${h.node}.cfg`);
        writeFileSync(file, h.cfg);
        // -c checks the file first, so a bad config fails with haproxy's own message, not a timeout.
        await ctx.cluster.exec(`node${h.node}`, ["haproxy", "-c", "-q", "-f", file]);
        procs.push(
          await ctx.cluster.detach(`node${h.node}`, ["haproxy", "-f", file, "-db"], `bench haproxy${http ? "-http" : ""} node${h.node}`),
        );
      }
      const tls = await handshake(ctx, tunnel, node1, ca.cert, serverName);
      return {
        target: listen,
        proxyPids: procs.map((p) => p.pid),
        // The limit less a margin for the harness's own check requests.
        maxConnections: limit - 50,
        info: {
          [`haproxy${http ? " (HTTP mode)" : ""} TLS`]: `${tls.protocol} ${tls.cipher}, ECDSA P-256 certificates, mutual, peer verified: ${tls.verified ? "yes" : "NO"}`,
        },
      };
    },
    async teardown() {
      const stopping = procs;
      procs = [];
      if (ctxRef) await Promise.all(stopping.map((p) => ctxRef?.cluster.stop(p)));
    },
  };
}

/** Handshakes with the server half from node 1 as the client half would, and reports the result. */
async function handshake(
  ctx: VariantContext,
  tunnel: { host: string; port: number },
  client: { cert: string; key: string },
  caFile: string,
  serverName: string,
) {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const r = await ctx.cluster.exec(
      "node1",
      [
        "openssl",
        "s_client",
        "-brief",
        "-connect",
        `${tunnel.host}:${tunnel.port}`,
        "-servername",
        serverName,
        "-verify_hostname",
        serverName,
        "-verify_return_error",
        "-CAfile",
        caFile,
        "-cert",
        client.cert,
        "-key",
        client.key,
      ],
      { input: "", allowFailure: true, timeoutMs: 10_000 },
    );
    try {
      const facts = parseSClientBrief(`${r.stdout}\n${r.stderr}`);
      if (facts.protocol !== "TLSv1.3") throw new Error(`the HAProxy pair negotiated ${facts.protocol}, not TLSv1.3`);
      if (!facts.verified) throw new Error("openssl could not verify the server half's certificate against the bench CA");
      return facts;
    } catch (e) {
      // Not listening yet shows up as a failed handshake; anything else persists to the deadline.
      if (Date.now() > deadline) throw new Error(`HAProxy server half on node 2: ${errorMessage(e)}`);
      await new Promise((res) => setTimeout(res, 100));
    }
  }
}
