/**
 * Network namespaces managed through iproute2's named netns (/run/netns/<name>).
 * Commands are run inside with nsenter rather than `ip netns exec`, which remounts /sys and
 * so hides /sys/fs/bpf and the cgroup mount from the command.
 */
import { existsSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { run } from "./exec.js";

/** Where iproute2 keeps named network namespaces. */
export const NETNS_DIR = "/run/netns";

/** Path of a named netns' bind mount. */
export function netnsPath(name: string): string {
  return join(NETNS_DIR, name);
}

/** Names of all named network namespaces. */
export function listNetns(): string[] {
  try {
    return readdirSync(NETNS_DIR).sort();
  } catch {
    return [];
  }
}

/** True when the named netns exists. */
export function netnsExists(name: string): boolean {
  return existsSync(netnsPath(name));
}

/** Creates a named netns. */
export async function addNetns(name: string): Promise<void> {
  await run("ip", ["netns", "add", name]);
}

/** Deletes a named netns; missing is fine. Interfaces inside it are destroyed with it. */
export async function deleteNetns(name: string): Promise<void> {
  if (!netnsExists(name)) return;
  await run("ip", ["netns", "delete", name], { allowFailure: true });
}

/** Inode identifying a netns (what /proc/<pid>/ns/net points to), or null when absent. */
export function netnsInode(name: string): bigint | null {
  try {
    return statSync(netnsPath(name), { bigint: true }).ino;
  } catch {
    return null;
  }
}

/** Runs `ip -batch` inside a netns: one fork for many link/addr/route commands. */
export async function ipBatch(netns: string | null, commands: readonly string[]): Promise<void> {
  if (commands.length === 0) return;
  const args = netns ? ["-n", netns, "-batch", "-"] : ["-batch", "-"];
  await run("ip", args, { input: `${commands.join("\n")}\n` });
}

/** argv that runs a command inside a netns with nsenter (keeps /sys/fs/bpf visible). */
export function nsenterArgv(netns: string, argv: readonly string[]): string[] {
  return ["nsenter", `--net=${netnsPath(netns)}`, "--", ...argv];
}

/** Runs a command inside a netns and returns its output. */
export async function runInNetns(netns: string, argv: readonly string[], timeoutMs = 30_000) {
  const [tool, ...args] = nsenterArgv(netns, argv);
  return run(tool as string, args, { timeoutMs });
}

/** Sets sysctls inside a netns (net.* sysctls are per netns). */
export async function sysctlInNetns(netns: string, settings: Readonly<Record<string, string>>): Promise<void> {
  const script = Object.entries(settings)
    .map(([k, v]) => `echo ${v} > /proc/sys/${k.replace(/\./g, "/")}`)
    .join(" && ");
  await run("nsenter", [`--net=${netnsPath(netns)}`, "--", "sh", "-c", script]);
}
