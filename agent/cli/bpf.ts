/**
 * `weft bpf`: the node's eBPF state read from the pinned objects themselves — programs and their
 * links (what they attach to), maps with entry counts, the enrolled pods by cgroup, guards,
 * exclusions and decision counters. It needs no agent (capture outlives it: pins stay), and uses
 * the agent only to name pods and find the pin directory when it answers.
 */
import { resolve } from "node:path";
import type { Command } from "commander";
import { action, CliError, emit, parseFormat, table } from "../../common/cli-output.js";
import { errorMessage } from "../../common/errors.js";
import type { MeshSnapshotData } from "../../controller/api/model.js";
import { cgroup2Root } from "../../native/cgroup.js";
import { type Inspection, inspect } from "../redirect/inspect.js";
import { type AgentClient, type AgentFlags, AgentUnreachableError, agentOptions, connectAgent } from "./agent-client.js";
import { cgroupPaths, choosePinDir, shortCgroup } from "./bpf-locate.js";
import type { AgentRuntime } from "./status.js";

/** `weft bpf` as JSON. */
export interface BpfReport extends Omit<Inspection, "pods" | "links"> {
  /** How the pin directory was chosen. */
  chosenBy: string;
  /** Whether the agent answered (it is not needed). */
  agent: string;
  links: (Inspection["links"][number] & { cgroup?: string })[];
  pods: { cgroupId: string; cgroup?: string; pod?: string; ip: string; capture: boolean; guard?: string }[];
}

/** The agent, when it answers quickly; undefined otherwise (this command works without it). */
async function optionalAgent(o: AgentFlags): Promise<{ client?: AgentClient; note: string }> {
  try {
    const client = await connectAgent({ ...o, timeout: o.timeout ?? "1500ms" });
    await client.send("GET", "/healthz");
    return { client, note: `reachable at ${client.label}` };
  } catch (e) {
    if (e instanceof AgentUnreachableError)
      return { note: `not reachable at ${e.tried.map((t) => `${t.address} (${t.reason})`).join(" or ")}` };
    return { note: `not reachable: ${errorMessage(e)}` };
  }
}

/** Builds the report (exported for tests). */
export function bpfReport(
  s: Inspection,
  chosenBy: string,
  agent: string,
  podByIp: Map<string, string>,
  cgroupRoot: string | null,
): BpfReport {
  const ids = new Set<string>([...s.pods.map((p) => p.cgroupId), ...s.links.flatMap((l) => (l.cgroupId ? [l.cgroupId] : []))]);
  const paths = cgroupRoot ? cgroupPaths(cgroupRoot, ids) : new Map<string, string>();
  const guards = new Map(s.guard.map((g) => [g.ip, g.mode]));
  return {
    ...s,
    chosenBy,
    agent,
    // Cgroup hooks first (the capture itself), then the per-pod guards.
    links: [...s.links]
      .sort((a, b) => Number(a.kind !== "cgroup") - Number(b.kind !== "cgroup") || a.pin.localeCompare(b.pin))
      .map((l) => ({ ...l, ...(l.cgroupId && paths.has(l.cgroupId) ? { cgroup: paths.get(l.cgroupId) } : {}) })),
    pods: [...s.pods]
      .sort((a, b) => (podByIp.get(a.ip) ?? a.ip).localeCompare(podByIp.get(b.ip) ?? b.ip))
      .map((p) => ({
        cgroupId: p.cgroupId,
        ...(paths.has(p.cgroupId) ? { cgroup: paths.get(p.cgroupId) } : {}),
        ...(podByIp.has(p.ip) ? { pod: podByIp.get(p.ip) } : {}),
        ip: p.ip,
        capture: (p.flags & 1) === 1,
        ...(guards.has(p.ip) ? { guard: guards.get(p.ip) } : {}),
      })),
  };
}

/** The human rendering (exported for tests). */
export function renderBpf(r: BpfReport, cgroupRoot: string): string {
  if (!r.exists || r.state === "empty") return `${r.pinDir}: nothing pinned (weft's capture is not installed here)\nagent: ${r.agent}`;
  const lines = [
    `pin directory ${r.pinDir} (${r.chosenBy}): ${r.state}${r.reason ? ` — ${r.reason}` : ""}`,
    `agent: ${r.agent}`,
    "",
    table(
      ["PROGRAM", "PROG-ID", "LINK-ID", "PIN", "ATTACHED TO"],
      r.links.map((l) => [
        l.progName || "?",
        String(l.progId),
        String(l.linkId),
        l.pin,
        l.kind === "cgroup"
          ? `cgroup ${l.cgroup ? shortCgroup(cgroupRoot, l.cgroup) : "?"} (id ${l.cgroupId})`
          : l.kind === "tcx"
            ? `tcx egress, ifindex ${l.ifindex}`
            : `attach type ${l.attachType}`,
      ]),
    ),
  ];
  if (r.maps.length)
    lines.push(
      "",
      table(
        ["MAP", "MAP-ID", "ENTRIES"],
        r.maps.map((m) => [m.name, String(m.id), String(m.entries)]),
      ),
    );
  lines.push(
    "",
    r.pods.length
      ? table(
          ["ENROLLED POD", "CGROUP", "CGROUP-ID", "IP", "CAPTURE", "GUARD"],
          r.pods.map((p) => [p.pod ?? "?", shortCgroup(cgroupRoot, p.cgroup), p.cgroupId, p.ip, p.capture ? "yes" : "no", p.guard ?? "-"]),
        )
      : "no pods enrolled",
  );
  if (r.excluded.length) lines.push("", `excluded from capture: ${r.excluded.join(", ")}`);
  const counters = Object.entries(r.stats).filter(([, n]) => n > 0);
  if (counters.length) lines.push("", `decision counters: ${counters.map(([k, n]) => `${k}=${n}`).join(" ")}`);
  return lines.join("\n");
}

/** Registers `weft bpf`. */
export function registerBpfCommand(program: Command): void {
  agentOptions(
    program
      .command("bpf")
      .description(
        "eBPF state from the pinned objects: programs, links, maps and entry counts, enrolled pods by cgroup (works with the agent down)",
      ),
  )
    .option("--pin-dir <dir>", "bpffs directory of the pins (default: the agent's, else /sys/fs/bpf/weft, else the only one present)")
    .option("-o, --output <format>", "table, json or yaml", "table")
    .action(
      action(async (o) => {
        const format = parseFormat(o.output);
        if (typeof process.getuid === "function" && process.getuid() !== 0)
          throw new CliError("weft bpf reads pinned eBPF objects, which needs root (CAP_BPF and CAP_SYS_ADMIN): try sudo weft bpf");
        const { client, note } = await optionalAgent(o);
        const runtime = client ? await client.json<AgentRuntime>("/runtime").catch(() => undefined) : undefined;
        const chosen = choosePinDir({
          ...(o.pinDir ? { pinDir: resolve(o.pinDir) } : {}),
          ...(runtime?.settings.dataPlane?.capture?.pinDir ? { agentPinDir: runtime.settings.dataPlane.capture.pinDir } : {}),
          ...(o.node ? { node: o.node } : {}),
        });
        const podByIp = new Map<string, string>();
        const dump = client ? await client.json<MeshSnapshotData>("/config_dump").catch(() => undefined) : undefined;
        for (const w of dump?.workloads ?? []) for (const a of w.addresses) podByIp.set(a, `${w.namespace}/${w.name}`);
        let cgRoot: string | null = null;
        try {
          cgRoot = cgroup2Root();
        } catch {
          // no cgroup v2: ids stay unnamed
        }
        const report = bpfReport(inspect(chosen.dir), chosen.how, note, podByIp, cgRoot);
        emit(format, report, () => renderBpf(report, cgRoot ?? "/"));
      }),
    );
}
