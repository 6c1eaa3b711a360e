/**
 * `weft tap`: a live stream of the proxy's connection events (open, close with bytes, duration,
 * policy and response flags), filtered by pod and namespace on the agent's side (linkerd viz tap,
 * hubble observe). Ctrl-C stops it cleanly (exit 0); an agent that goes away is an error.
 */
import type { Command } from "commander";
import { action, CliError, parseFormat } from "../../common/cli-output.js";
import type { TapLine } from "../admin-debug.js";
import { agentOptions, connectAgent } from "./agent-client.js";
import { shortIdentity } from "./connections.js";
import { bytes, duration, interruptible } from "./humanize.js";

type EventLine = Extract<TapLine, { type: "open" | "close" }>;

const hostPort = (a: { ip: string; port: number } | undefined) => (a ? (a.port ? `${a.ip}:${a.port}` : a.ip) : "?");

/** One event as a line of text (exported for tests). */
export function renderEvent(e: EventLine): string {
  const c = e.connection;
  const time = e.at.slice(11, 23);
  const src = c.srcWorkload ? `${c.srcWorkload} (${hostPort(c.src)})` : hostPort(c.src);
  const dst = c.dstWorkload ? `${c.dstWorkload} (${hostPort(c.target ?? c.dst)})` : hostPort(c.target ?? c.dst);
  const ids = c.srcIdentity || c.dstIdentity ? ` [${shortIdentity(c.srcIdentity)} -> ${shortIdentity(c.dstIdentity)}]` : "";
  const head = `${time}  ${e.type === "open" ? "OPEN " : "CLOSE"}  ${c.direction === "inbound" ? "in " : "out"} ${c.mode.padEnd(11)} ${src} -> ${dst}${c.service ? ` via ${c.service}` : ""}${ids}`;
  if (e.type === "open") return `${head}${c.policy ? `  policy: ${c.policy}` : ""}`;
  const flags = e.responseFlags && e.responseFlags !== "-" ? `  flags: ${e.responseFlags}` : "";
  return `${head}  ${bytes(c.bytesReceived)} in, ${bytes(c.bytesSent)} out, ${duration(c.ageMs)}${c.policy ? `  policy: ${c.policy}` : ""}${flags}${e.error ? `  error: ${e.error}${e.errorCode ? ` [${e.errorCode}]` : ""}` : ""}`;
}

/** One finished HTTP request as a line of text (exported for tests). */
export function renderRequest(e: Extract<TapLine, { type: "request" }>): string {
  const r = e.request;
  const time = e.at.slice(11, 23);
  const dst = r.destinationWorkload ? `${r.destinationWorkload} (${r.upstream ?? "?"})` : (r.upstream ?? r.upstreamCluster ?? "-");
  const grpc = r.grpcStatus ? ` grpc-status ${r.grpcStatus}` : "";
  const flags = r.flags !== "-" ? `  flags: ${r.flags}` : "";
  const tries = r.attempts > 1 ? `  attempts: ${r.attempts}` : "";
  const why = r.reason ? `  (${r.reason})` : "";
  return `${time}  REQ    ${r.method} ${r.authority}${r.path} -> ${r.status}${grpc}  ${r.source} -> ${dst}  route ${r.route}  ${duration(r.durationMs)}${tries}${flags}${why}  id ${r.requestId}`;
}

/** Registers `weft tap`. */
export function registerTapCommand(program: Command): void {
  agentOptions(
    program
      .command("tap")
      .description(
        "live stream of this node's connection events (open/close, bytes, policy decision, errors) and HTTP requests (route, status, flags) until Ctrl-C",
      ),
  )
    .option("--pod <pod>", "only connections from or to this pod (ns/name, name or IP)")
    .option("-n, --namespace <ns>", "only connections from or to this namespace")
    .option("-o, --output <format>", "table (one line per event) or json (NDJSON)", "table")
    .action(
      action(async (o) => {
        const format = parseFormat(o.output);
        if (format === "yaml") throw new CliError("-o yaml does not suit a stream: use -o json (one JSON object per line)");
        const agent = await connectAgent(o);
        const q = new URLSearchParams({ ...(o.pod ? { pod: o.pod } : {}), ...(o.namespace ? { namespace: o.namespace } : {}) });
        const stop = interruptible();
        let events = 0;
        let ended: string | undefined;
        try {
          const how = await agent.stream(
            `/tap${q.size ? `?${q}` : ""}`,
            (raw) => {
              const line = raw as TapLine;
              switch (line.type) {
                case "start": {
                  const f = Object.entries(line.filter).map(([k, v]) => `${k} ${v}`);
                  process.stderr.write(
                    `tapping connections on node ${line.node} (${agent.label})${f.length ? ` for ${f.join(", ")}` : ""}; Ctrl-C to stop\n`,
                  );
                  return;
                }
                case "open":
                case "close":
                  events++;
                  if (stop.signal.aborted) return;
                  process.stdout.write(format === "json" ? `${JSON.stringify(line)}\n` : `${renderEvent(line)}\n`);
                  return;
                case "request":
                  events++;
                  if (stop.signal.aborted) return;
                  process.stdout.write(format === "json" ? `${JSON.stringify(line)}\n` : `${renderRequest(line)}\n`);
                  return;
                case "dropped":
                  process.stderr.write(`weft: the agent dropped ${line.count} events: this client fell behind\n`);
                  return;
                case "end":
                  ended = line.reason ?? "no reason given";
                  return;
                default:
                  return;
              }
            },
            stop.signal,
          );
          if (how === "ended") throw new CliError(`the agent at ${agent.label} ended the tap: ${ended ?? "stream closed"}`);
          process.stderr.write(`\n${events} event${events === 1 ? "" : "s"}\n`);
        } finally {
          stop.dispose();
        }
      }),
    );
}
