/**
 * Where the map's numbers come from: every agent's metrics (through their admin sockets, or the
 * addresses given), two scrapes a window apart; or a Prometheus server's rates.
 */
import { CliError } from "../../common/cli-output.js";
import { errorMessage } from "../../common/errors.js";
import { type AgentAddress, AgentClient, formatAddress, listAgentSockets, parseAgentAddress } from "./agent-client.js";
import { parsePrometheusText, type RateSample, ratesBetween, type Sample, sumSamples } from "./graph-samples.js";

/** The metric families the map reads. */
export const GRAPH_METRICS = ["istio_requests_total", "istio_request_duration_milliseconds_bucket", "istio_tcp_"];

/** One agent that could not be read, and why. */
export interface SourceProblem {
  agent: string;
  reason: string;
}

/** The agents to read: --agent addresses, else every admin socket on this host. */
export function agentAddresses(agents: readonly string[] | undefined, socketDir?: string): AgentAddress[] {
  if (agents?.length) return agents.map((a) => parseAgentAddress(a));
  const sockets = listAgentSockets(socketDir);
  if (sockets.length === 0)
    throw new CliError(
      "no agent to read: no /run/weft/agent-*.sock on this host; pass --agent <address> (repeatable) or --prometheus <url>",
    );
  return sockets.map((path) => ({ kind: "unix", path }));
}

/** Scrapes every agent once; an agent that fails is reported, the rest still count. */
export async function scrapeAgents(
  addresses: readonly AgentAddress[],
  timeoutMs = 5000,
): Promise<{ samples: Sample[]; problems: SourceProblem[] }> {
  const problems: SourceProblem[] = [];
  const lists = await Promise.all(
    addresses.map(async (a) => {
      try {
        const r = await new AgentClient(a, timeoutMs).send("GET", "/stats/prometheus");
        if (r.status !== 200) throw new Error(`HTTP ${r.status}: ${r.body.slice(0, 120)}`);
        return parsePrometheusText(r.body, GRAPH_METRICS);
      } catch (e) {
        problems.push({ agent: formatAddress(a), reason: errorMessage(e) });
        return [];
      }
    }),
  );
  if (problems.length === addresses.length)
    throw new CliError(`cannot read any agent's metrics: ${problems.map((p) => `${p.agent}: ${p.reason}`).join("; ")}`);
  return { samples: sumSamples(lists), problems };
}

/** Keeps the last scrape to turn the next one into rates. */
export class AgentRates {
  private last: { at: number; samples: Sample[] } | undefined;

  constructor(
    private readonly addresses: readonly AgentAddress[],
    private readonly timeoutMs = 5000,
  ) {}

  /** Scrapes now; rates since the previous scrape (none on the first call: every rate is 0). */
  async next(): Promise<{ rates: RateSample[]; seconds: number; problems: SourceProblem[] }> {
    const at = Date.now();
    const { samples, problems } = await scrapeAgents(this.addresses, this.timeoutMs);
    const seconds = this.last ? (at - this.last.at) / 1000 : 0;
    const rates = ratesBetween(this.last?.samples ?? samples, samples, seconds);
    this.last = { at, samples };
    return { rates, seconds, problems };
  }
}

const BY =
  "source_workload,source_workload_namespace,destination_workload,destination_workload_namespace,destination_service,destination_service_name,destination_service_namespace,request_protocol,response_code,grpc_response_status,response_flags,connection_security_policy,reporter";

/** The PromQL the map runs on Prometheus (also what the dashboards' edge panels use). */
export function prometheusQueries(window: string): Record<string, string> {
  return {
    istio_requests_total: `sum by (${BY}) (rate(istio_requests_total{reporter="source"}[${window}]))`,
    istio_request_duration_milliseconds_bucket: `sum by (${BY},le) (rate(istio_request_duration_milliseconds_bucket{reporter="source"}[${window}]))`,
    istio_tcp_connections_opened_total: `sum by (${BY}) (rate(istio_tcp_connections_opened_total{reporter="source"}[${window}]))`,
    istio_tcp_sent_bytes_total: `sum by (${BY}) (rate(istio_tcp_sent_bytes_total{reporter="source"}[${window}]))`,
    istio_tcp_received_bytes_total: `sum by (${BY}) (rate(istio_tcp_received_bytes_total{reporter="source"}[${window}]))`,
  };
}

interface PromVector {
  status: string;
  error?: string;
  data?: { resultType: string; result: { metric: Record<string, string>; value: [number, string] }[] };
}

/** Runs one instant query against Prometheus' HTTP API. */
export async function promQuery(
  base: string,
  query: string,
  timeoutMs = 10_000,
): Promise<{ metric: Record<string, string>; value: number }[]> {
  const url = new URL("api/v1/query", base.endsWith("/") ? base : `${base}/`);
  url.searchParams.set("query", query);
  let res: Response;
  try {
    res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
  } catch (e) {
    throw new CliError(`cannot reach Prometheus at ${base}: ${errorMessage(e)} (check --prometheus)`);
  }
  const body = (await res.json().catch(() => ({ status: "error", error: `HTTP ${res.status}, not JSON` }))) as PromVector;
  if (body.status !== "success" || !body.data) throw new CliError(`Prometheus at ${base} refused the query: ${body.error ?? res.status}`);
  return body.data.result.map((r) => ({ metric: r.metric, value: Number(r.value[1]) }));
}

/** Rates from Prometheus over `window` (the cumulative value is rate × window: "in the window"). */
export async function prometheusRates(base: string, windowSeconds: number): Promise<RateSample[]> {
  const out: RateSample[] = [];
  for (const [name, q] of Object.entries(prometheusQueries(`${windowSeconds}s`))) {
    for (const r of await promQuery(base, q)) out.push({ name, labels: r.metric, value: r.value * windowSeconds, rate: r.value });
  }
  return out;
}
