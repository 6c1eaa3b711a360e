/**
 * `weft graph`'s work: the live service map from every agent's metrics (or Prometheus): a refreshing
 * terminal table that fits 80 columns, `-o json|dot`, or `--serve`, a local web page.
 */
import { CliError } from "../../common/cli-output.js";
import { durationMs } from "../../common/duration.js";
import { errorMessage } from "../../common/errors.js";
import type { MeshSnapshotData } from "../../controller/api/model.js";
import { type AgentAddress, AgentClient } from "./agent-client.js";
import { buildGraph, type Graph } from "./graph-model.js";
import { type AppliedPolicy, mergeMeshStates, policiesFor } from "./graph-policies.js";
import { renderDot, renderTable } from "./graph-render.js";
import { type ServedGraph, servedGraph, serveGraph, serverUrl } from "./graph-serve.js";
import { AgentRates, agentAddresses, prometheusRates } from "./graph-source.js";

/** Options of `weft graph`. */
export interface GraphFlags {
  output: string;
  agent?: string[];
  prometheus?: string;
  window: string;
  interval: string;
  once?: boolean;
  serve?: boolean;
  port: string;
}

function duration(flag: string, text: string, minMs: number): number {
  const ms = durationMs(text);
  if (ms === null || ms < minMs) throw new CliError(`${flag} '${text}': expected a duration of at least ${minMs} ms, such as 5s or 1m`);
  return ms;
}

/** Produces successive graphs from agents or Prometheus. */
class GraphFeed {
  private readonly rates: AgentRates | undefined;
  problems: string[] = [];

  constructor(
    private readonly addresses: AgentAddress[] | undefined,
    private readonly prometheus: string | undefined,
    private readonly windowMs: number,
  ) {
    if (addresses) this.rates = new AgentRates(addresses);
  }

  /** First call from agents: two scrapes a window apart. */
  async first(): Promise<Graph> {
    if (this.rates) {
      await this.rates.next();
      await new Promise((r) => setTimeout(r, this.windowMs));
    }
    return this.next();
  }

  async next(): Promise<Graph> {
    if (this.prometheus) {
      this.problems = [];
      return buildGraph(await prometheusRates(this.prometheus, this.windowMs / 1000), "prometheus", this.windowMs / 1000);
    }
    const r = await (this.rates as AgentRates).next();
    this.problems = r.problems.map((p) => `${p.agent}: ${p.reason}`);
    return buildGraph(r.rates, "agents", r.seconds);
  }

  /** Policies per edge, from the agents' mesh state (none with Prometheus only). */
  async policies(g: Graph): Promise<Record<string, AppliedPolicy[]>> {
    if (!this.addresses) return {};
    const states = (
      await Promise.all(this.addresses.map((a) => new AgentClient(a).json<MeshSnapshotData>("/config_dump").catch(() => undefined)))
    ).filter((s): s is MeshSnapshotData => s !== undefined);
    if (states.length === 0) return {};
    const mesh = mergeMeshStates(states);
    return Object.fromEntries(g.edges.map((e) => [e.id, policiesFor(e, mesh)]));
  }
}

async function serve(feed: GraphFeed, port: number, intervalMs: number): Promise<void> {
  let current: ServedGraph | undefined;
  const update = async (g: Graph) => {
    current = servedGraph(g, await feed.policies(g), feed.problems);
  };
  const server = await serveGraph(port, () => current, intervalMs);
  process.stdout.write(`weft graph: serving ${serverUrl(server)} (Ctrl-C to stop)\n`);
  await update(await feed.first());
  const timer = setInterval(() => {
    feed
      .next()
      .then(update)
      .catch((e) => process.stderr.write(`weft graph: refresh failed: ${errorMessage(e)}\n`));
  }, intervalMs);
  await new Promise<void>((resolve) => {
    const stop = () => {
      clearInterval(timer);
      server.close();
      resolve();
    };
    process.once("SIGINT", stop);
    process.once("SIGTERM", stop);
  });
}

/** Runs `weft graph` (loaded only when the command runs). */
export async function runGraph(o: GraphFlags): Promise<void> {
  if (!["table", "json", "dot"].includes(o.output)) throw new CliError(`-o '${o.output}': use table, json or dot`);
  if (o.prometheus && o.agent?.length) throw new CliError("--prometheus and --agent are exclusive: read either Prometheus or the agents");
  if (o.prometheus) {
    try {
      new URL(o.prometheus);
    } catch {
      throw new CliError(`--prometheus '${o.prometheus}': expected a URL such as http://127.0.0.1:9090`);
    }
  }
  const windowMs = duration("--window", o.window, 1000);
  const intervalMs = duration("--interval", o.interval, 500);
  const port = Number(o.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new CliError(`--port '${o.port}': expected 0-65535`);
  const addresses = o.prometheus ? undefined : agentAddresses(o.agent);
  const feed = new GraphFeed(addresses, o.prometheus, windowMs);
  if (o.serve) return serve(feed, port, intervalMs);
  if (o.output !== "table" || o.once || !process.stdout.isTTY) {
    const g = await feed.first();
    for (const p of feed.problems) process.stderr.write(`weft graph: skipped ${p}\n`);
    if (o.output === "json") process.stdout.write(`${JSON.stringify(g, null, 2)}\n`);
    else if (o.output === "dot") process.stdout.write(`${renderDot(g)}\n`);
    else process.stdout.write(`${renderTable(g, process.stdout.columns ?? 80)}\n`);
    return;
  }
  process.stdout.write(`weft graph: measuring for ${windowMs / 1000}s…\n`);
  let g = await feed.first();
  for (;;) {
    // Clear and redraw in place; the table is sized to the terminal (80 columns at least fits).
    process.stdout.write(
      `\x1b[H\x1b[2J${renderTable(g, process.stdout.columns ?? 80)}\n${feed.problems.map((p) => `skipped ${p}\n`).join("")}(Ctrl-C to stop)\n`,
    );
    await new Promise((r) => setTimeout(r, intervalMs));
    g = await feed.next();
  }
}
