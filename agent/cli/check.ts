/**
 * `weft check` (linkerd check for a node): the node's prerequisites, weft's ports, the agent, its
 * controller and the clock, one PASS/WARN/FAIL line each with the fix, then node facts from
 * systeminformation. Works with no agent (that is one failed line, not an error); --pre checks only
 * what must hold before the agent is installed. Exit code 1 when anything failed.
 */
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { connect } from "node:net";
import type { Command } from "commander";
import { action, CliError, emit, parseFormat } from "../../common/cli-output.js";
import { errorMessage } from "../../common/errors.js";
import { type AgentClient, AgentUnreachableError, agentOptions, connectAgent, parseAgentAddress } from "./agent-client.js";
import { type CheckResult, type CheckStatus, checkCaps, nodeChecks } from "./check-node.js";
import { isWeftAgent, listeners, portChecks, socketOwners, WEFT_PORTS } from "./check-ports.js";
import { bytes, duration, relative } from "./humanize.js";
import type { AgentRuntime, AgentStatus } from "./status.js";

/** Facts about the node, for the record (and for bug reports). */
export interface NodeFacts {
  cpu: string;
  cores: number;
  memoryTotal: number;
  memoryAvailable: number;
  os: string;
  kernel: string;
  arch: string;
  hostname: string;
}

/** Everything `weft check` found. */
export interface CheckReport {
  checks: CheckResult[];
  facts?: NodeFacts;
  summary: Record<CheckStatus, number>;
}

const agentResult = (name: string, status: CheckStatus, detail: string, fix?: string): CheckResult => ({
  category: "agent",
  name,
  status,
  detail,
  ...(fix ? { fix } : {}),
});

const clockResult = (name: string, status: CheckStatus, detail: string, fix?: string): CheckResult => ({
  ...agentResult(name, status, detail, fix),
  category: "clock",
});

async function facts(): Promise<NodeFacts | undefined> {
  try {
    const si = (await import("systeminformation")).default;
    const [cpu, mem, os] = await Promise.all([si.cpu(), si.mem(), si.osInfo()]);
    return {
      cpu: `${cpu.manufacturer} ${cpu.brand}`.trim(),
      cores: cpu.cores,
      memoryTotal: mem.total,
      memoryAvailable: mem.available,
      os: `${os.distro} ${os.release}${os.codename ? ` (${os.codename})` : ""}`,
      kernel: os.kernel,
      arch: os.arch,
      hostname: os.hostname,
    };
  } catch {
    return undefined;
  }
}

/** Certificates' validity windows against this node's clock, and NTP where systemd says. */
export function clockCheck(certs: AgentStatus["components"]["identity"], now = Date.now(), ntp = ntpSynchronized()): CheckResult {
  const held = (certs ?? []).filter((c) => c.notBefore && c.notAfter);
  const early = held.filter((c) => Date.parse(c.notBefore as string) > now);
  const late = held.filter((c) => Date.parse(c.notAfter as string) <= now);
  if (early.length)
    return clockResult(
      "clock",
      "fail",
      `this node's clock is behind the CA's: ${early[0]?.identity} is valid only from ${early[0]?.notBefore} (${relative(early[0]?.notBefore, now)})`,
      "synchronise the clock (NTP/chrony); peers reject certificates that are not yet valid",
    );
  if (late.length)
    return clockResult(
      "clock",
      "fail",
      `${late.length} certificate(s) expired by this node's clock (${late[0]?.identity} at ${late[0]?.notAfter}): the clock is ahead, or renewal is failing`,
      "check the clock (NTP) and the agent's log for renewal errors",
    );
  const sync = ntp === true ? "; NTP synchronized" : ntp === false ? "; NTP NOT synchronized" : "; NTP state unknown (no systemd)";
  const detail = held.length ? `${held.length} certificate(s) valid by this node's clock${sync}` : `no certificates to compare with${sync}`;
  if (ntp === false) return clockResult("clock", "warn", detail, "enable time synchronisation (systemd-timesyncd, chrony)");
  return clockResult("clock", "pass", detail);
}

/** NTPSynchronized from timedatectl (undefined where systemd is not running). */
function ntpSynchronized(): boolean | undefined {
  const r = spawnSync("timedatectl", ["show", "-p", "NTPSynchronized", "--value"], { encoding: "utf8", timeout: 2000 });
  const v = r.status === 0 ? r.stdout.trim() : "";
  return v === "yes" ? true : v === "no" ? false : undefined;
}

function controllerFromStatus(s: AgentStatus): CheckResult {
  const x = s.components.xds;
  if (!x)
    return { category: "controller", name: "controller", status: "info", detail: "the agent runs from a local config file: no controller" };
  if (x.state === "connected")
    return {
      category: "controller",
      name: "controller",
      status: "pass",
      detail: `the agent is connected to ${x.target} (since ${relative(x.since)})`,
    };
  return {
    category: "controller",
    name: "controller",
    status: "fail",
    detail: `the agent is ${x.state} to ${x.target} since ${relative(x.since)}${x.lastError ? `: ${x.lastError}` : ""} (it keeps serving its last config)`,
    fix: `check the controller is running and that this node reaches ${x.target} (TCP; a NetworkPolicy or firewall may block it)`,
  };
}

/** TCP connect to --controller from here. */
function probeController(target: string, timeoutMs: number): Promise<CheckResult> {
  const a = parseAgentAddress(target, "--controller");
  if (a.kind !== "tcp") throw new CliError(`--controller '${target}': expected <host>:<port>`);
  const started = Date.now();
  return new Promise((resolve) => {
    const s = connect({ host: a.host, port: a.port, timeout: timeoutMs });
    const done = (r: CheckResult) => {
      s.destroy();
      resolve(r);
    };
    s.once("connect", () =>
      done({
        category: "controller",
        name: "controller (direct)",
        status: "pass",
        detail: `TCP connect to ${target} in ${Date.now() - started} ms`,
      }),
    );
    const fail = (why: string) =>
      done({
        category: "controller",
        name: "controller (direct)",
        status: "fail",
        detail: `cannot connect to ${target} from here: ${why}`,
        fix: "check the controller runs and listens there, and that no firewall or NetworkPolicy blocks the port",
      });
    s.once("timeout", () => fail(`no answer within ${timeoutMs} ms`));
    s.once("error", (e: NodeJS.ErrnoException) => fail(e.code ?? e.message));
  });
}

/** The agent's pid when /proc shows it as a weft agent (same pid namespace). */
function visibleAgentPid(rt: AgentRuntime | undefined): number | undefined {
  if (!rt) return undefined;
  try {
    const cmd = readFileSync(`/proc/${rt.pid}/cmdline`, "utf8").split("\0").join(" ");
    return isWeftAgent(cmd) ? rt.pid : undefined;
  } catch {
    return undefined;
  }
}

async function agentChecks(o: {
  agent?: string;
  node?: string;
  timeout?: string;
}): Promise<{ results: CheckResult[]; runtime?: AgentRuntime }> {
  let client: AgentClient;
  let status: AgentStatus;
  try {
    client = await connectAgent(o);
    status = await client.json<AgentStatus>("/status");
  } catch (e) {
    const detail =
      e instanceof AgentUnreachableError
        ? `not reachable at ${e.tried.map((t) => `${t.address} (${t.reason})`).join(" or ")}`
        : errorMessage(e);
    return {
      results: [
        agentResult(
          "agent",
          "fail",
          detail,
          "start it (weft agent --node <name> …, or check its DaemonSet pod); its log says why it stopped. Capture stays on meanwhile: new connections of enrolled pods fail closed",
        ),
        {
          category: "controller",
          name: "controller",
          status: "info",
          detail: "skipped: known through the agent (or pass --controller <host:port>)",
        },
        clockResult("clock", "info", "skipped: the certificates to compare with are the agent's"),
      ],
    };
  }
  const runtime = await client.json<AgentRuntime>("/runtime").catch(() => undefined);
  const results = [
    agentResult("agent", "pass", `${status.node} v${status.version} at ${client.label}, up ${duration(status.uptimeSeconds * 1000)}`),
    status.ready.ready
      ? agentResult("ready", "pass", "config synced, certificates held, proxy listening, capture attached")
      : agentResult(
          "ready",
          "fail",
          `not ready: ${status.ready.reasons.join("; ")}`,
          "see `weft status` and the agent's log for each reason",
        ),
  ];
  const pid = visibleAgentPid(runtime);
  if (pid !== undefined) {
    try {
      results.push(checkCaps(readFileSync(`/proc/${pid}/status`, "utf8"), `the agent (pid ${pid})`));
    } catch {
      // exited meanwhile
    }
  }
  results.push(controllerFromStatus(status), clockCheck(status.components.identity));
  return { results, ...(runtime ? { runtime } : {}) };
}

/** Runs every check. */
export async function runChecks(o: {
  pre?: boolean;
  controller?: string;
  agent?: string;
  node?: string;
  timeout?: string;
}): Promise<CheckReport> {
  const checks = nodeChecks();
  let runtime: AgentRuntime | undefined;
  const agentPart: CheckResult[] = [];
  if (!o.pre) {
    const a = await agentChecks(o);
    agentPart.push(...a.results);
    runtime = a.runtime;
    if (o.controller) {
      // Beside what the agent says of its controller, before the clock.
      const clock = agentPart.findIndex((c) => c.category === "clock");
      agentPart.splice(clock < 0 ? agentPart.length : clock, 0, await probeController(o.controller, 3000));
    }
  }
  const pid = visibleAgentPid(runtime);
  const found = listeners(pid ?? "self");
  const held = new Set(found.filter((l) => WEFT_PORTS.some((p) => p.port === l.port)).map((l) => l.inode));
  checks.push(
    ...portChecks(
      found,
      socketOwners(held),
      pid,
      pid !== undefined ? "in the agent's network namespace" : "in this shell's network namespace",
    ),
    ...agentPart,
  );
  const f = await facts();
  const summary: Record<CheckStatus, number> = { pass: 0, warn: 0, fail: 0, info: 0 };
  for (const c of checks) summary[c.status]++;
  return { checks, ...(f ? { facts: f } : {}), summary };
}

const TAG: Record<CheckStatus, string> = { pass: "PASS", warn: "WARN", fail: "FAIL", info: "INFO" };

/** The human rendering (exported for tests). */
export function renderChecks(r: CheckReport): string {
  const width = Math.max(...r.checks.map((c) => c.name.length)) + 2;
  const lines: string[] = [];
  let category = "";
  for (const c of r.checks) {
    if (c.category !== category) {
      category = c.category;
      if (lines.length) lines.push("");
      lines.push(category);
    }
    lines.push(`  ${TAG[c.status]}  ${c.name.padEnd(width)}${c.detail}`);
    if (c.fix && (c.status === "fail" || c.status === "warn")) lines.push(`  ${" ".repeat(6 + width)}fix: ${c.fix}`);
  }
  if (r.facts) {
    const f = r.facts;
    lines.push(
      "",
      "node facts",
      `  cpu       ${f.cpu}, ${f.cores} cores`,
      `  memory    ${bytes(f.memoryTotal)} total, ${bytes(f.memoryAvailable)} available`,
      `  os        ${f.os}, kernel ${f.kernel}, ${f.arch}`,
      `  hostname  ${f.hostname}`,
    );
  }
  const s = r.summary;
  lines.push("", `${s.pass} passed, ${s.warn} warnings, ${s.fail} failed`);
  return lines.join("\n");
}

/** Registers `weft check`. */
export function registerCheckCommand(program: Command): void {
  agentOptions(
    program
      .command("check")
      .description(
        "check this node for weft: kernel, BTF, cgroup v2, bpffs, capabilities, libbpf, BPF objects, ports, agent, controller, clock",
      ),
  )
    .option("--pre", "only what must hold before the agent is installed (no agent, controller or clock checks)")
    .option("--controller <host:port>", "also try a TCP connection to the controller from here")
    .option("-o, --output <format>", "table, json or yaml", "table")
    .action(
      action(async (o) => {
        const format = parseFormat(o.output);
        const report = await runChecks(o);
        emit(format, report, () => renderChecks(report));
        if (report.summary.fail > 0) process.exitCode = 1;
      }),
    );
}
