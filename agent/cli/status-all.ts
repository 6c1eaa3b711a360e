/**
 * `weft status --all`: every agent side by side (config version, last ACK/NACK with its reason,
 * certificate expiry, capture), joined with the controller's view of each stream, and a verdict
 * per agent: ok, LAGGING (a push unanswered longer than --lag-after, or not connected), REJECTED
 * (its last answer was a NACK) or UNREACHABLE.
 */
import { existsSync } from "node:fs";
import { adminGet } from "../../common/admin-server.js";
import { errorMessage } from "../../common/errors.js";
import { type AgentAddress, AgentClient, formatAddress, nodeOfSocket } from "./agent-client.js";
import { relative } from "./humanize.js";

/** The parts of an agent's GET /status this view reads (a subset of `weft status`'s). */
export interface AgentStatus {
  node: string;
  source: "controller" | "local";
  appliedVersions: Record<string, string>;
  ready: { ready: boolean; reasons: string[] };
  components: {
    xds?: { state: string; lastResponseAt?: string; recentNacks?: unknown[] };
    identity?: { notAfter?: string }[];
    redirect?: { attached: boolean; desired: number; unresolved: unknown[]; bpf: { maps: { name: string; entries: number }[] } };
  };
}

/** Where a controller's status socket is by default (the controller's default --state-dir). */
export const DEFAULT_CONTROLLER_SOCKET = "/var/lib/weft/controller/controller.sock";

/** The parts of the controller's GET /status this view reads. */
export interface ControllerStatus {
  xds: {
    systemVersion?: string;
    agents: {
      node: string;
      connectedAt: string;
      lastAckAt?: string;
      types: Record<string, { ackedVersion?: string; pending: boolean; pendingMs?: number; pendingVersion?: string }>;
      nacks: { type: string; at: string; message: string }[];
    }[];
  };
}

/** One agent's row. */
export interface DriftRow {
  node: string;
  address: string;
  verdict: "ok" | "LAGGING" | "REJECTED" | "UNREACHABLE" | "NOT READY";
  why: string[];
  /** Newest version the agent applied (of any type). */
  configVersion?: string;
  lastAck?: string;
  lastNack?: { at: string; type: string; reason: string };
  certExpiry?: string;
  certificates: number;
  capture: string;
}

/** The joined view. */
export interface DriftReport {
  controller: { socket: string; systemVersion?: string; error?: string } | null;
  agents: DriftRow[];
}

/** Orders "epoch-counter" versions (counter numerically); others as strings. */
function newest(versions: readonly string[]): string | undefined {
  const key = (v: string) => {
    const m = /^(.*)-(\d+)$/.exec(v);
    return m ? [m[1] as string, Number(m[2])] : [v, 0];
  };
  return [...versions].sort((a, b) => {
    const [ea, ca] = key(a);
    const [eb, cb] = key(b);
    return String(ea).localeCompare(String(eb)) || Number(ca) - Number(cb);
  })[versions.length - 1];
}

function captureOf(s: AgentStatus): string {
  const r = s.components.redirect;
  if (!r) return "off";
  if (!r.attached) return "NOT ATTACHED";
  const pods = r.bpf.maps.find((m) => m.name === "weft_pods")?.entries ?? 0;
  return `${pods}/${r.desired} pods${r.unresolved.length ? `, ${r.unresolved.length} unresolved` : ""}`;
}

/** Pushes the controller sent that a stream has not answered for at least `lagAfterMs`. */
function pendingPushes(stream: ControllerStatus["xds"]["agents"][number] | undefined, lagAfterMs: number): string[] {
  return Object.entries(stream?.types ?? {})
    .filter(([, t]) => t.pending && (t.pendingMs ?? 0) >= lagAfterMs)
    .map(([type, t]) => `${type} push ${t.pendingVersion ?? ""} unanswered for ${Math.round((t.pendingMs ?? 0) / 100) / 10}s`);
}

/** Joins agents' and the controller's status into rows with verdicts (pure: tests feed it). */
export function driftRows(
  agents: readonly { address: string; node: string; status?: AgentStatus; error?: string }[],
  controller: ControllerStatus | undefined,
  lagAfterMs: number,
): DriftRow[] {
  const streams = new Map((controller?.xds.agents ?? []).map((a) => [a.node, a]));
  return agents.map((a) => {
    const s = a.status;
    if (!s) {
      // The controller may still say why: a push it sent and the agent never answered.
      const why = [`admin API: ${a.error ?? "no answer"}`, ...pendingPushes(streams.get(a.node), lagAfterMs)];
      return { node: a.node, address: a.address, verdict: why.length > 1 ? "LAGGING" : "UNREACHABLE", why, certificates: 0, capture: "-" };
    }
    const why: string[] = [];
    const row: DriftRow = { node: s.node, address: a.address, verdict: "ok", why, certificates: 0, capture: captureOf(s) };
    const applied = newest(Object.values(s.appliedVersions));
    if (applied) row.configVersion = applied;
    const certs = s.components.identity ?? [];
    row.certificates = certs.length;
    const expiry = certs
      .map((c) => c.notAfter)
      .filter((x): x is string => !!x)
      .sort()[0];
    if (expiry) row.certExpiry = expiry;
    const agentNack = s.components.xds?.recentNacks?.at(-1) as
      | { at: string; type: string; errors?: { message?: string }[] | string }
      | undefined;
    const stream = streams.get(s.node);
    const ctlNack = stream?.nacks.at(-1);
    if (ctlNack) row.lastNack = { at: ctlNack.at, type: ctlNack.type, reason: ctlNack.message };
    else if (agentNack)
      row.lastNack = {
        at: agentNack.at,
        type: agentNack.type,
        reason: typeof agentNack.errors === "string" ? agentNack.errors : (agentNack.errors ?? []).map((e) => e.message ?? "").join("; "),
      };
    const lastAck = stream?.lastAckAt ?? s.components.xds?.lastResponseAt;
    if (lastAck) row.lastAck = lastAck;
    if (s.source === "controller" && controller) {
      if (!stream) {
        row.verdict = "LAGGING";
        why.push(`not connected to the controller (${s.components.xds?.state ?? "no stream"}): serving its last config`);
      } else {
        why.push(...pendingPushes(stream, lagAfterMs));
        if (why.length) row.verdict = "LAGGING";
      }
    }
    // A NACK newer than the last ACK means the agent holds an older config than it was sent.
    if (row.lastNack && (!row.lastAck || row.lastNack.at >= row.lastAck)) {
      row.verdict = row.verdict === "ok" ? "REJECTED" : row.verdict;
      why.push(`rejected ${row.lastNack.type}: ${row.lastNack.reason}`);
    }
    if (row.verdict === "ok" && !s.ready.ready) {
      row.verdict = "NOT READY";
      why.push(...s.ready.reasons);
    }
    return row;
  });
}

/** Reads every agent and the controller. */
export async function collectDrift(
  addresses: readonly AgentAddress[],
  controllerSocket: string | undefined,
  lagAfterMs: number,
  timeoutMs = 5000,
): Promise<DriftReport> {
  const agents = await Promise.all(
    addresses.map(async (address) => {
      const label = formatAddress(address);
      const node = address.kind === "unix" ? nodeOfSocket(address.path) : label;
      try {
        return { address: label, node, status: await new AgentClient(address, timeoutMs).json<AgentStatus>("/status") };
      } catch (e) {
        return { address: label, node, error: errorMessage(e) };
      }
    }),
  );
  let controller: DriftReport["controller"] = null;
  let cs: ControllerStatus | undefined;
  const socket = controllerSocket ?? (existsSync(DEFAULT_CONTROLLER_SOCKET) ? DEFAULT_CONTROLLER_SOCKET : undefined);
  if (socket) {
    try {
      cs = JSON.parse((await adminGet(socket, "/status", timeoutMs, "controller")).body) as ControllerStatus;
      controller = { socket, ...(cs.xds.systemVersion ? { systemVersion: cs.xds.systemVersion } : {}) };
    } catch (e) {
      controller = { socket, error: errorMessage(e) };
    }
  }
  return { controller, agents: driftRows(agents, cs, lagAfterMs) };
}

/** The side-by-side table, then one line per problem. */
export function renderDrift(r: DriftReport, now = Date.now()): string {
  const head = r.controller
    ? r.controller.error
      ? `controller: UNREACHABLE at ${r.controller.socket} (${r.controller.error})`
      : `controller: ${r.controller.socket}, current config ${r.controller.systemVersion ?? "-"}`
    : "controller: not found (pass --controller <socket>); agents only";
  const rows = r.agents.map((a) => [
    a.node,
    a.verdict,
    a.configVersion ?? "-",
    a.lastAck ? relative(a.lastAck, now) : "-",
    a.lastNack ? `${a.lastNack.type} ${relative(a.lastNack.at, now)}` : "-",
    a.certExpiry ? `${a.certificates}, ${relative(a.certExpiry, now)}` : String(a.certificates),
    a.capture,
  ]);
  const headers = ["NODE", "STATE", "CONFIG", "LAST ACK", "LAST NACK", "CERTS, EXPIRY", "CAPTURE"];
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((row) => (row[i] ?? "").length)));
  const line = (cells: readonly string[]) =>
    cells
      .map((c, i) => c.padEnd(widths[i] ?? 0))
      .join("  ")
      .trimEnd();
  const problems = r.agents.flatMap((a) => a.why.map((w) => `${a.node}: ${w}`));
  return [head, line(headers), ...rows.map(line), ...(problems.length ? ["", ...problems] : [])].join("\n");
}
