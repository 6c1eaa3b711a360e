/**
 * The handover between two agents of a node: the pidfile names the live agent (never a dead one
 * or a recycled pid, never this process), a successor's SIGTERM is answered by the release, and
 * a predecessor that does not release is reported by pid; request migration is switched on in the
 * netns, or its absence reported.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { AgentPidFile, takeOver } from "../../agent/lifecycle/handover.js";
import { enableRequestMigration } from "../../agent/lifecycle/migrate.js";
import { processStartTime } from "../../native/proc.js";
import { captureLogger } from "../helpers/control-log.js";
import { waitFor } from "../helpers/wait.js";

const dir = mkdtempSync(join(tmpdir(), "weft-handover-"));
const children: ChildProcess[] = [];

/** A stand-in for a running agent: on SIGTERM it removes `file` (when given) and keeps running. */
async function fakeAgent(releases: string | null): Promise<ChildProcess> {
  const code = releases
    ? `process.on("SIGTERM", () => require("fs").rmSync(${JSON.stringify(releases)}, { force: true })); console.log("up"); setInterval(() => {}, 1000);`
    : `process.on("SIGTERM", () => {}); console.log("up"); setInterval(() => {}, 1000);`;
  const child = spawn(process.execPath, ["-e", code], { stdio: ["ignore", "pipe", "ignore"] });
  children.push(child);
  await new Promise<void>((resolve) => child.stdout?.once("data", () => resolve()));
  return child;
}

function writeOwner(file: AgentPidFile, pid: number, start = processStartTime(pid) ?? ""): void {
  writeFileSync(file.path, `${pid} ${start}\n`);
}

describe("agent handover", () => {
  afterEach(() => {
    for (const c of children.splice(0)) c.kill("SIGKILL");
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("the pidfile names only a live other process with the recorded start time", async () => {
    const file = new AgentPidFile("n1", dir);
    expect(file.holder()).toBeNull();
    file.claim();
    expect(readFileSync(file.path, "utf8")).toMatch(new RegExp(`^${process.pid} `));
    expect(file.holder()).toBeNull(); // this process is never its own predecessor
    const child = await fakeAgent(null);
    writeOwner(file, child.pid as number);
    expect(file.holder()).toEqual({ pid: child.pid, startTime: processStartTime(child.pid as number) });
    writeOwner(file, child.pid as number, "1"); // same pid, another process's start time: recycled
    expect(file.holder()).toBeNull();
    child.kill("SIGKILL");
    await waitFor("the child gone", () => processStartTime(child.pid as number) === null, 5000);
    writeOwner(file, child.pid as number);
    expect(file.holder()).toBeNull();
  });

  it("releases the pidfile only while it still names this process", () => {
    const file = new AgentPidFile("n2", dir);
    writeFileSync(file.path, "1 123\n");
    file.release();
    expect(readFileSync(file.path, "utf8")).toBe("1 123\n");
    file.claim();
    file.release();
    expect(() => readFileSync(file.path)).toThrow(/ENOENT/);
  });

  it("takes over once the predecessor, sent SIGTERM, has released the pidfile", async () => {
    const file = new AgentPidFile("n3", dir);
    const old = await fakeAgent(file.path);
    writeOwner(file, old.pid as number);
    const from = file.holder();
    expect(from?.pid).toBe(old.pid);
    await takeOver(file, from as { pid: number; startTime: string }, 10_000, captureLogger().log);
    expect(file.holder()).toBeNull();
  });

  it("names a predecessor that does not release in time", async () => {
    const file = new AgentPidFile("n4", dir);
    const stuck = await fakeAgent(null);
    writeOwner(file, stuck.pid as number);
    await expect(takeOver(file, file.holder() as { pid: number; startTime: string }, 300, captureLogger().log)).rejects.toThrow(
      new RegExp(`running agent \\(pid ${stuck.pid}\\) did not release the node`),
    );
  });

  it("switches request migration on, or warns when it cannot", () => {
    const sysctl = join(dir, "tcp_migrate_req");
    writeFileSync(sysctl, "0\n");
    const cap = captureLogger();
    expect(enableRequestMigration(cap.log, sysctl)).toBe(true);
    expect(readFileSync(sysctl, "utf8")).toBe("1");
    expect(enableRequestMigration(cap.log, join(dir, "missing", "tcp_migrate_req"))).toBe(false);
    expect(cap.find(/cannot enable request migration/)).toHaveLength(1);
  });
});
