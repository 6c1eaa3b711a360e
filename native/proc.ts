/**
 * Process bookkeeping for cleanup: a recorded pid is only ours if its start time still matches,
 * so a recycled pid is never killed by mistake.
 */
import { readdirSync, readFileSync, readlinkSync } from "node:fs";

/** Start time of a process in clock ticks since boot (field 22 of /proc/<pid>/stat), or null. */
export function processStartTime(pid: number): string | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // comm (field 2) may contain spaces and parentheses; fields after the last ')' are fixed.
    const rest = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return rest[19] ?? null;
  } catch {
    return null;
  }
}

/** True when the pid is alive (not a zombie) and is the same process that was recorded. */
export function isSameProcess(pid: number, startTime: string): boolean {
  return processStartTime(pid) === startTime && !isZombie(pid);
}

/** PIDs of all processes whose network namespace is one of the given inodes. */
export function pidsInNetns(inodes: ReadonlySet<bigint>): number[] {
  if (inodes.size === 0) return [];
  const out: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const link = readlinkSync(`/proc/${entry}/ns/net`); // "net:[4026532288]"
      const m = /\[(\d+)\]/.exec(link);
      if (m && inodes.has(BigInt(m[1] as string))) out.push(Number(entry));
    } catch {
      // process exited or is not ours to read
    }
  }
  return out;
}

/** Sends a signal; returns false when the process no longer exists. */
export function signal(pid: number, sig: NodeJS.Signals | 0): boolean {
  try {
    process.kill(pid, sig);
    return true;
  } catch {
    return false;
  }
}

/** Waits until none of the pids is alive, or the deadline passes; returns the survivors. */
export async function waitGone(pids: readonly number[], timeoutMs: number): Promise<number[]> {
  const deadline = Date.now() + timeoutMs;
  let alive = pids.filter((p) => signal(p, 0));
  while (alive.length > 0 && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 20));
    alive = alive.filter((p) => processStartTime(p) !== null && !isZombie(p));
  }
  return alive;
}

function isZombie(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2).startsWith("Z");
  } catch {
    return true;
  }
}

/** Resolves on the first SIGTERM or SIGINT (a daemon's cue to drain and stop). */
export function untilSignal(): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    const on = (sig: NodeJS.Signals) => {
      process.off("SIGTERM", on);
      process.off("SIGINT", on);
      resolve(sig);
    };
    process.on("SIGTERM", on);
    process.on("SIGINT", on);
  });
}
