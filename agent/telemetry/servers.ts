/**
 * The agent's two small HTTP endpoints: Prometheus metrics on 15020 (agent metrics plus every proxy
 * worker's, summed as one) and readiness on 15021 (ready only when capture is attached, config is
 * synced and certificates are held; otherwise 503 with the reasons).
 */
import { createServer, type Server } from "node:http";
import { AggregatorRegistry, type Registry } from "prom-client";
import type { MetricsJson } from "../proxy/handle.js";

/** Readiness and the reasons it is not. */
export interface Readiness {
  ready: boolean;
  reasons: string[];
}

/** Renders the agent registry and the proxy workers' metrics as one Prometheus text page. */
export async function renderMetrics(agent: Registry, proxy: MetricsJson[]): Promise<string> {
  const own = (await agent.getMetricsAsJSON()) as MetricsJson;
  // aggregate() sums counters by label set across workers; metrics only one side has pass through.
  const merged = AggregatorRegistry.aggregate([own, ...proxy]);
  return merged.metrics();
}

function listen(server: Server, ip: string, port: number): Promise<Server> {
  return new Promise((resolve, reject) => {
    server.once("error", (e: NodeJS.ErrnoException) =>
      reject(
        new Error(
          `cannot listen on ${ip}:${port}: ${e.code ?? e.message}${e.code === "EADDRINUSE" ? " (is another agent running on this node?)" : ""}`,
        ),
      ),
    );
    server.listen(port, ip, () => resolve(server));
  });
}

/** Serves /metrics (and /stats/prometheus, Istio's path). */
export function serveMetrics(ip: string, port: number, collect: () => Promise<string>): Promise<Server> {
  const server = createServer((req, res) => {
    const path = (req.url ?? "/").split("?")[0];
    if (path !== "/metrics" && path !== "/stats/prometheus") {
      res.writeHead(404, { "content-type": "text/plain" }).end("not found: try /metrics\n");
      return;
    }
    collect().then(
      (text) => res.writeHead(200, { "content-type": AggregatorRegistry.PROMETHEUS_CONTENT_TYPE }).end(text),
      (e: Error) => res.writeHead(500, { "content-type": "text/plain" }).end(`metrics collection failed: ${e.message}\n`),
    );
  });
  return listen(server, ip, port);
}

/** Serves /healthz/ready: 200 "ready", or 503 listing what is missing. */
export function serveReadiness(ip: string, port: number, check: () => Readiness): Promise<Server> {
  const server = createServer((req, res) => {
    const path = (req.url ?? "/").split("?")[0];
    if (path !== "/healthz/ready") {
      res.writeHead(404, { "content-type": "text/plain" }).end("not found: try /healthz/ready\n");
      return;
    }
    const r = check();
    res.writeHead(r.ready ? 200 : 503, { "content-type": "text/plain" }).end(r.ready ? "ready\n" : `not ready: ${r.reasons.join("; ")}\n`);
  });
  return listen(server, ip, port);
}
