/**
 * Test helpers for redirect on the local cluster: write pods files, run `weft redirect serve` on
 * a node (in its netns and system cgroup, as the agent runs), the proxy stand-in, probes from
 * pods, long-lived connections, and what bpftool sees.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { type Inspection, inspect } from "../../agent/redirect/inspect.js";
import type { PodRedirect } from "../../agent/redirect/types.js";
import { cgroup2Root } from "../../native/cgroup.js";
import { run } from "../../native/exec.js";
import { clusterPodRedirects, type PodPolicy } from "../../scripts/cluster/pod-redirects.js";
import type { PodRecord } from "../../scripts/cluster/state.js";
import { readState, runProbe } from "./cluster.js";
import { waitFor } from "./wait.js";
import { ROOT, WEFT_BIN, weftOk } from "./weft.js";

/** The probe run inside pods and nodes. */
export const REDIRECT_PROBE = join(ROOT, "test", "helpers", "redirect-probe.mjs");

/** Pin directory of a test cluster's node (what `weft cluster down` cleans). */
export function pinDirOf(cluster: string, node: number): string {
  return `/sys/fs/bpf/${cluster}-node${node}`;
}

/** Writes a pods file atomically (rename), as a real writer would. */
export function writePods(file: string, pods: readonly PodRedirect[]): void {
  const tmp = `${file}.tmp`;
  writeFileSync(tmp, JSON.stringify(pods, null, 2));
  renameSync(tmp, file);
}

/** PodRedirect[] of a node's pods, each pod's policy chosen by name (pods left out get null). */
export function nodePods(cluster: string, node: number, policy: (name: string) => PodPolicy | null): PodRedirect[] {
  return clusterPodRedirects(readState(cluster), node, { cgroupRoot: cgroup2Root(), policy: (p: PodRecord) => policy(p.name) });
}

/** Starts `weft redirect serve` on a node (recorded, so `down` stops it); returns its pid. */
export async function startServe(cluster: string, node: number, podsFile: string, extra: readonly string[] = []): Promise<number> {
  const cg = join(cgroup2Root(), cluster, `node${node}`);
  const out = await weftOk([
    "cluster",
    "exec",
    "--name",
    cluster,
    "--detach",
    `node${node}`,
    "--",
    process.execPath,
    WEFT_BIN,
    "redirect",
    "serve",
    "--node-name",
    `node${node}`,
    "--pin-dir",
    pinDirOf(cluster, node),
    "--pod-cgroup-parent",
    join(cg, "pods"),
    "--proxy-cgroup",
    join(cg, "system"),
    "--proxy-address",
    `10.244.${node}.1`,
    "--pods",
    podsFile,
    "--resync-ms",
    "1000",
    ...extra,
  ]);
  return Number(out.trim());
}

/** Log file of a recorded cluster process. */
export function logOf(cluster: string, pid: number): string {
  const rec = readState(cluster).processes.find((p) => p.pid === pid);
  if (!rec?.logFile) throw new Error(`no log recorded for pid ${pid}`);
  return rec.logFile;
}

/** JSON log lines of a process (its own pid's lines only: restarts append to the same file). */
export function logLines(cluster: string, pid: number): Record<string, unknown>[] {
  return readFileSync(logOf(cluster, pid), "utf8")
    .split("\n")
    .filter((l) => l.startsWith("{"))
    .map((l) => JSON.parse(l) as Record<string, unknown>)
    .filter((l) => l.pid === pid);
}

/** Waits for a log line of pid with this msg; returns it. */
export function waitLog(cluster: string, pid: number, msg: string, timeoutMs = 15_000): Promise<Record<string, unknown>> {
  return waitFor(`log '${msg}' from pid ${pid}`, () => logLines(cluster, pid).find((l) => l.msg === msg), timeoutMs);
}

/** Waits until the pinned state satisfies check. */
export function waitPinned(pinDir: string, what: string, check: (s: Inspection) => boolean, timeoutMs = 15_000): Promise<Inspection> {
  return waitFor(
    what,
    () => {
      const s = inspect(pinDir);
      return check(s) ? s : null;
    },
    timeoutMs,
  );
}

/** Starts the proxy stand-in on a node at <gateway>:15001; returns its pid once it accepts. */
export async function startProxyStandIn(cluster: string, node: number): Promise<number> {
  const pid = Number(
    (
      await weftOk([
        "cluster",
        "exec",
        "--name",
        cluster,
        "--detach",
        `node${node}`,
        "--",
        process.execPath,
        REDIRECT_PROBE,
        "proxy-listen",
        `10.244.${node}.1`,
        "15001",
      ])
    ).trim(),
  );
  await waitFor(
    "proxy stand-in listening",
    () => readFileSync(logOf(cluster, pid), "utf8").includes(`listening 10.244.${node}.1:15001`),
    10_000,
  );
  return pid;
}

/** Result of one probe connect. */
export interface ConnectResult {
  ok: boolean;
  reply?: string;
  code?: string;
  localAddress?: string;
  localPort?: number;
  remoteAddress?: string;
  remotePort?: number;
  ms: number;
}

/** What the proxy stand-in saw for a captured connection (its first reply line). */
export interface AcceptedView {
  local: string;
  localPort: number;
  remote: string;
  remotePort: number;
}

/** Connects from a pod or node to host:port (bound to localAddress when given), sends message, returns what came back. */
export function connectFrom(
  cluster: string,
  from: string,
  host: string,
  port: number,
  message = "hi",
  timeoutMs = 3000,
  localAddress?: string,
): Promise<ConnectResult> {
  const args = ["connect", host, String(port), message, String(timeoutMs), ...(localAddress ? [localAddress] : [])];
  return runProbe<ConnectResult>(cluster, from, REDIRECT_PROBE, args);
}

/** The stand-in's banner from a reply, or null when the connection did not reach the stand-in. */
export function acceptedView(r: ConnectResult): AcceptedView | null {
  const first = (r.reply ?? "").split("\n")[0] ?? "";
  if (!first.startsWith("{")) return null;
  const v = JSON.parse(first) as Partial<AcceptedView>;
  return typeof v.localPort === "number" ? (v as AcceptedView) : null;
}

/** A long-lived connection from a pod; stop() ends it and returns whether every ping came back. */
export interface Held {
  connected: Promise<{ remoteAddress: string; remotePort: number; localPort: number }>;
  stop(): Promise<{ ok: boolean; pings: number; echoed: number; error: string | null }>;
}

/** Opens a long-lived connection from a pod that pings every 50 ms (bounded by maxMs). */
export function hold(cluster: string, from: string, host: string, port: number, maxMs = 60_000): Held {
  const child: ChildProcess = spawn(
    process.execPath,
    [
      WEFT_BIN,
      "cluster",
      "exec",
      "--name",
      cluster,
      from,
      "--",
      process.execPath,
      REDIRECT_PROBE,
      "hold",
      host,
      String(port),
      String(maxMs),
    ],
    { stdio: ["pipe", "pipe", "pipe"] },
  );
  let out = "";
  child.stdout?.on("data", (d) => {
    out += d;
  });
  const lines = () =>
    out
      .split("\n")
      .filter((l) => l.startsWith("{"))
      .map((l) => JSON.parse(l) as Record<string, unknown>);
  const exited = new Promise<void>((resolve) => child.on("exit", () => resolve()));
  return {
    connected: waitFor(
      `held connection ${from} -> ${host}:${port}`,
      () => {
        const l = lines().find((x) => x.event === "connected" || "ok" in x);
        if (l && "ok" in l) throw new Error(`connection ended before it was up: ${JSON.stringify(l)}`);
        return l as never;
      },
      10_000,
    ),
    async stop() {
      child.stdin?.end("stop\n");
      await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))]);
      child.kill("SIGKILL");
      const summary = lines().find((x) => "ok" in x);
      if (!summary) throw new Error(`held connection printed no summary: ${out}`);
      return summary as never;
    },
  };
}

/** weft programs bpftool sees anywhere on the machine, as "id:name". */
export async function bpftoolWeftPrograms(): Promise<{ id: number; name: string }[]> {
  const { stdout } = await run("bpftool", ["-j", "prog", "show"]);
  return (JSON.parse(stdout || "[]") as { id: number; name?: string }[])
    .filter((p) => (p.name ?? "").startsWith("weft_"))
    .map((p) => ({ id: p.id, name: p.name as string }));
}

/** Link ids bpftool sees anywhere on the machine. */
export async function bpftoolLinkIds(): Promise<number[]> {
  const { stdout } = await run("bpftool", ["-j", "link", "show"]);
  return (JSON.parse(stdout || "[]") as { id: number }[]).map((l) => l.id);
}
