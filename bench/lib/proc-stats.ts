/**
 * A proxy's cost as the kernel accounts it: CPU time (utime + stime of the whole thread group,
 * /proc/<pid>/stat fields 14 and 15, in clock ticks) and resident memory (VmRSS). Read before and
 * after a run, the difference is what the run cost the proxies, whatever language they are in.
 */
import { execFileSync } from "node:child_process";
import { readdirSync, readFileSync, readlinkSync } from "node:fs";

let ticks: number | undefined;

/** Clock ticks per second (USER_HZ), what /proc/<pid>/stat counts CPU time in. */
export function clockTicksPerSecond(): number {
  if (ticks === undefined) {
    const out = execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim();
    const n = Number(out);
    if (!Number.isInteger(n) || n <= 0) throw new Error(`getconf CLK_TCK printed '${out}', not a positive whole number`);
    ticks = n;
  }
  return ticks;
}

/** utime + stime (clock ticks) from the text of /proc/<pid>/stat. */
export function parseStatCpuTicks(stat: string): number {
  // comm (field 2) may hold spaces and ')'; the fields after the last ')' start at field 3.
  const close = stat.lastIndexOf(")");
  if (close < 0) throw new Error("/proc/<pid>/stat: no ')' closing the command name");
  const fields = stat.slice(close + 2).split(" ");
  const utime = Number(fields[11]);
  const stime = Number(fields[12]);
  if (!Number.isInteger(utime) || !Number.isInteger(stime))
    throw new Error(`/proc/<pid>/stat: utime/stime '${fields[11]}'/'${fields[12]}' are not numbers`);
  return utime + stime;
}

/** A "Vm…:   1234 kB" field of /proc/<pid>/status, in bytes. */
export function parseStatusKb(status: string, field: "VmRSS" | "VmHWM"): number {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB$`, "m").exec(status);
  if (!m) throw new Error(`/proc/<pid>/status has no ${field} line`);
  return Number(m[1]) * 1024;
}

/** CPU seconds a process has used so far; throws naming the pid when it is gone. */
export function cpuSeconds(pid: number): number {
  return parseStatCpuTicks(readProc(pid, "stat")) / clockTicksPerSecond();
}

/** Resident set size of a process, in bytes. */
export function rssBytes(pid: number): number {
  return parseStatusKb(readProc(pid, "status"), "VmRSS");
}

/** Number of sockets a process holds open (its /proc/<pid>/fd entries that are sockets). */
export function socketCount(pid: number): number {
  let n = 0;
  let entries: string[];
  try {
    entries = readdirSync(`/proc/${pid}/fd`);
  } catch {
    throw new Error(`process ${pid} is gone (its /proc/${pid}/fd cannot be read)`);
  }
  for (const fd of entries) {
    try {
      if (readlinkSync(`/proc/${pid}/fd/${fd}`).startsWith("socket:")) n++;
    } catch {
      // closed between readdir and readlink
    }
  }
  return n;
}

/** A snapshot of a set of processes' CPU time, for measuring what happened in between. */
export interface CpuSnapshot {
  at: number;
  seconds: Map<number, number>;
}

/** Takes a CPU snapshot of the pids. */
export function snapshotCpu(pids: readonly number[]): CpuSnapshot {
  return { at: performance.now(), seconds: new Map(pids.map((p) => [p, cpuSeconds(p)])) };
}

/** CPU seconds the snapshot's processes used since it was taken (summed over them). */
export function cpuSince(before: CpuSnapshot): number {
  let total = 0;
  for (const [pid, s] of before.seconds) total += cpuSeconds(pid) - s;
  return total;
}

/** Total RSS of the pids, in bytes. */
export function totalRss(pids: readonly number[]): number {
  return pids.reduce((sum, p) => sum + rssBytes(p), 0);
}

function readProc(pid: number, file: string): string {
  try {
    return readFileSync(`/proc/${pid}/${file}`, "utf8");
  } catch {
    throw new Error(`process ${pid} is gone (it was measured as a proxy: did it crash?)`);
  }
}

/** The open-files limit (soft and hard) from the text of /proc/<pid>/limits. */
export function parseOpenFilesLimit(limits: string): { soft: number; hard: number } {
  const m = /^Max open files\s+(\d+|unlimited)\s+(\d+|unlimited)\s+files/m.exec(limits);
  if (!m) throw new Error("/proc/<pid>/limits has no 'Max open files' line");
  const n = (s: string) => (s === "unlimited" ? Number.MAX_SAFE_INTEGER : Number(s));
  return { soft: n(m[1] as string), hard: n(m[2] as string) };
}

/**
 * Open-files hard limit this process passes on to what it starts. Without CAP_SYS_RESOURCE
 * (some sandboxes drop it even for root) nothing started from here can raise it, so a proxy's
 * connection count must fit under it.
 */
export function openFilesHardLimit(): number {
  return parseOpenFilesLimit(readFileSync("/proc/self/limits", "utf8")).hard;
}
