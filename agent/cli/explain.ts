/**
 * `weft explain <src-pod> <dst-host:port>`: what this node does with that connection, decided by
 * the agent's own code (capture rules, buildRequest, checkInbound) over its current state: captured
 * or not and why, which service and endpoints (the pick is random among the ready ones, so each is
 * explained), which node and identity, and which policy allows or denies it. A destination on
 * another node is judged by that node's agent: when its admin socket is on this host (the local
 * cluster) the CLI asks it; otherwise it says the decision is made there and what this agent knows.
 */
import { statSync } from "node:fs";
import type { Command } from "commander";
import { action, CliError, emit, parseFormat } from "../../common/cli-output.js";
import { errorMessage } from "../../common/errors.js";
import { type Candidate, type Explanation, type InboundVerdict, summarize } from "../admin-explain.js";
import { defaultAdminSocket } from "../config.js";
import { AgentClient, agentOptions, connectAgent } from "./agent-client.js";

const VERDICT: Record<string, string> = {
  allowed: "ALLOWED",
  denied: "DENIED",
  refused: "REFUSED",
  passthrough: "PASSTHROUGH (outside the mesh)",
  dropped: "DROPPED",
  direct: "DIRECT (not through the mesh)",
  remote: "DECIDED AT THE DESTINATION'S NODE",
  depends: "DEPENDS ON THE ENDPOINT",
};

function isSocket(path: string): boolean {
  try {
    return statSync(path).isSocket();
  } catch {
    return false;
  }
}

/**
 * Asks the destination nodes' agents, where their sockets are on this host, to evaluate what
 * this agent could not. Returns the explanation with those verdicts filled in.
 */
export async function followRemote(e: Explanation, self: string, timeoutMs: number): Promise<Explanation> {
  const candidates = await Promise.all(
    e.candidates.map(async (c): Promise<Candidate> => {
      const v = c.inbound;
      if (!v || v.evaluatedBy) return c;
      const socket = defaultAdminSocket(v.node);
      if (socket === self || !isSocket(socket)) return c;
      const q = new URLSearchParams(Object.entries(v.query).map(([k, x]): [string, string] => [k, String(x)]));
      try {
        const r = await new AgentClient({ kind: "unix", path: socket }, timeoutMs).json<InboundVerdict>(`/explain/inbound?${q}`);
        return { ...c, inbound: { ...r, note: `asked the agent of node ${v.node} at ${socket}` } };
      } catch (err) {
        return { ...c, inbound: { ...v, note: `could not ask the agent of node ${v.node} at ${socket}: ${errorMessage(err)}` } };
      }
    }),
  );
  return summarize({ ...e, candidates });
}

function block(rows: [string, string | undefined][], indent = ""): string[] {
  const shown = rows.filter((r): r is [string, string] => r[1] !== undefined && r[1] !== "");
  const width = Math.max(...shown.map(([k]) => k.length)) + 2;
  return shown.flatMap(([k, v]) => v.split("\n").map((line, i) => `${indent}${(i === 0 ? k : "").padEnd(width)}${line}`));
}

function policyText(v: InboundVerdict | undefined): string | undefined {
  if (!v) return undefined;
  const applying = v.policies.length ? v.policies.map((p) => `${p.key} (${p.action})`).join(", ") : "none";
  const who = v.evaluatedBy ? `per the agent of ${v.evaluatedBy}` : "as far as this agent knows";
  const mtls = v.mtls ? `; mTLS ${v.mtls.mode} (${v.mtls.source})${v.guard ? `, guard ${v.guard}` : ""}` : "";
  return `AuthorizationPolicies applying: ${applying} (${who})${mtls}${v.note ? `\n${v.note}` : ""}`;
}

/** The human rendering (exported for tests). */
export function renderExplanation(e: Explanation): string {
  const s = e.source;
  const d = e.destination;
  const svc = d.service;
  const lines = [
    `explain ${s.pod} -> ${d.input}  (agent ${e.node})`,
    "",
    ...block([
      ["source", `${s.pod}  ${s.ip}  on ${s.node} (this node)`],
      ["", `identity ${s.identity} (certificate: ${s.certificate})`],
      ["", `${s.enrolled ? "in the mesh" : "NOT in the mesh"}: ${s.enrolmentReason}`],
      [
        "destination",
        svc
          ? `${d.ip}:${d.port} is service ${svc.key} (${svc.hostname}), port ${svc.port} -> ${svc.targetPort}; ${svc.readyEndpoints} of ${svc.endpoints} endpoints ready`
          : `${d.ip}:${d.port}${d.workload ? ` is pod ${d.workload}` : ""}`,
      ],
      ["capture", `${e.capture.captured ? "CAPTURED" : "NOT CAPTURED"}: ${e.capture.reason}`],
      ["selection", e.selection],
    ]),
  ];
  const h = e.http;
  if (h) {
    lines.push(
      "",
      `http: ${h.request.method} ${h.request.path}${
        Object.keys(h.request.headers).length
          ? ` (${Object.entries(h.request.headers)
              .map(([k, v]) => `${k}: ${v}`)
              .join(", ")})`
          : ""
      }`,
      ...block(
        [
          ["protocol", h.protocol],
          ["route", h.route],
          ["shadowed", h.tables.length > 1 ? `${h.tables.slice(1).join(", ")} (only the first table for a service applies)` : undefined],
          [
            "decision",
            `${h.decision}${h.status ? ` ${h.status}` : ""}${h.cluster ? ` to ${h.cluster}` : ""}${h.endpoints !== undefined ? ` (${h.endpoints} endpoints)` : ""}`,
          ],
          ["rule", h.destinationRule ? `DestinationRule ${h.destinationRule}` : undefined],
          ["balance", h.loadBalancer],
          ["timeout", h.timeout],
          ["retries", h.retries],
          ["fault", h.fault],
          ["mirrors", h.mirrors.length ? h.mirrors.join(", ") : undefined],
          ["detail", h.detail],
        ],
        "    ",
      ),
    );
  }
  e.candidates.forEach((c, i) => {
    lines.push(
      "",
      `[${i + 1}/${e.candidates.length}] ${c.target}${c.workload ? `  ${c.workload}` : ""}${c.node ? ` on ${c.node}` : ""}`,
      ...block(
        [
          ["path", c.detail],
          ["identity", c.expectedIdentity ? `the destination must be ${c.expectedIdentity}` : undefined],
          ["policy", policyText(c.inbound)],
          // One candidate: the overall verdict below says it.
          ["verdict", e.candidates.length > 1 ? `${VERDICT[c.outcome] ?? c.outcome}: ${c.why}` : undefined],
        ],
        "    ",
      ),
    );
  });
  lines.push("", ...block([["verdict", `${VERDICT[e.outcome] ?? e.outcome}: ${e.summary}`]]));
  return lines.join("\n");
}

/** Registers `weft explain`. */
export function registerExplainCommand(program: Command): void {
  agentOptions(
    program
      .command("explain")
      .argument("<src-pod>", "the client pod: <namespace>/<name>, a unique name, or its IP (a pod of this node)")
      .argument("<destination>", "<host>:<port>, host being an IPv4 address, a service name (name[.namespace[.svc…]]) or a pod ns/name")
      .description("dry run: would this connection be captured, where would it go, which identity, which policy decides it"),
  )
    .option("--no-follow", "do not ask other nodes' agents (found by their sockets on this host) for their side")
    .option("--method <method>", "HTTP ports: the sample request's method", "GET")
    .option("--path <path>", "HTTP ports: the sample request's path (and query)", "/")
    .option("-H, --header <name:value...>", "HTTP ports: a header of the sample request (repeatable)")
    .option("-o, --output <format>", "table, json or yaml", "table")
    .action(
      action(async (src: string, dst: string, o) => {
        const format = parseFormat(o.output);
        const agent = await connectAgent(o);
        const q = new URLSearchParams({ src, dst, method: o.method, path: o.path });
        for (const h of (o.header as string[] | undefined) ?? []) {
          if (!h.includes(":")) throw new CliError(`--header '${h}': expected name:value, e.g. end-user:jason`);
          q.append("header", h);
        }
        let e = await agent.json<Explanation>(`/explain?${q}`);
        if (o.follow) e = await followRemote(e, agent.address.kind === "unix" ? agent.address.path : "", agent.timeoutMs);
        emit(format, e, () => renderExplanation(e));
      }),
    );
}
