/**
 * `weft graph --serve`: a local web page of the live map, bound to 127.0.0.1 only (the numbers
 * and policy names are the mesh's internals). The server refreshes the map every interval; the
 * page polls /graph.json.
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { layeredLayout, type Placed } from "./graph-layout.js";
import type { Graph } from "./graph-model.js";
import { graphPage } from "./graph-page.js";
import type { AppliedPolicy } from "./graph-policies.js";

/** What /graph.json answers. */
export interface ServedGraph {
  graph: Graph;
  layout: { nodes: Placed[]; width: number; height: number };
  /** Policies per edge id. */
  policies: Record<string, AppliedPolicy[]>;
  /** Agents that could not be read this round. */
  problems: string[];
}

/** Lays out a graph and attaches policies, for the page. */
export function servedGraph(graph: Graph, policies: Record<string, AppliedPolicy[]>, problems: string[] = []): ServedGraph {
  const layout = layeredLayout({
    nodes: graph.nodes.map((n) => ({ id: n.id, group: n.namespace })),
    edges: graph.edges,
  });
  return { graph, layout, policies, problems };
}

/** Serves the page and the current graph; resolves once listening. */
export function serveGraph(port: number, current: () => ServedGraph | undefined, refreshMs: number): Promise<Server> {
  const page = graphPage(refreshMs);
  const server = createServer((req, res) => {
    const path = (req.url ?? "/").split("?")[0];
    if (req.method !== "GET") {
      res.writeHead(405, { allow: "GET" }).end();
      return;
    }
    if (path === "/" || path === "/index.html") {
      res.writeHead(200, { "content-type": "text/html; charset=utf-8", "cache-control": "no-store" }).end(page);
      return;
    }
    if (path === "/graph.json") {
      const g = current();
      if (!g) {
        res.writeHead(503, { "content-type": "application/json" }).end(JSON.stringify({ error: "first scrape not done yet" }));
        return;
      }
      res.writeHead(200, { "content-type": "application/json", "cache-control": "no-store" }).end(JSON.stringify(g));
      return;
    }
    res.writeHead(404, { "content-type": "text/plain" }).end("not found: try /\n");
  });
  return new Promise((resolve, reject) => {
    server.once("error", (e: NodeJS.ErrnoException) =>
      reject(
        new Error(
          `cannot listen on 127.0.0.1:${port}: ${e.code === "EADDRINUSE" ? "port in use (choose another with --port)" : e.message}`,
        ),
      ),
    );
    server.listen(port, "127.0.0.1", () => resolve(server));
  });
}

/** The URL a server is reached at. */
export function serverUrl(server: Server): string {
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
}
