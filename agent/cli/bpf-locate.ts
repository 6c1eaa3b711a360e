/**
 * What `weft bpf` needs to find on its own, with the agent down: which bpffs directory holds the
 * node's pins, and which cgroup directory a cgroup id (its inode) is.
 */
import { readdirSync, statSync } from "node:fs";
import { join, relative } from "node:path";
import { CliError } from "../../common/cli-output.js";
import { MAP } from "../redirect/abi.js";
import { DEFAULT_PIN_DIR } from "../redirect/defaults.js";

/** Root of bpffs. */
export const BPFFS = "/sys/fs/bpf";

function hasMeta(dir: string): boolean {
  try {
    return readdirSync(dir).includes(MAP.meta);
  } catch {
    return false;
  }
}

/** Directories directly under the bpffs root that hold weft pins (a weft_meta map). */
export function weftPinDirs(root = BPFFS): string[] {
  let names: string[];
  try {
    names = readdirSync(root, { withFileTypes: true })
      .filter((d) => d.isDirectory())
      .map((d) => d.name)
      .sort();
  } catch {
    return [];
  }
  return names.map((n) => join(root, n)).filter(hasMeta);
}

/**
 * The pin directory to read: --pin-dir; else the running agent's (when it answered); else the
 * default /sys/fs/bpf/weft when it holds pins; else, with --node, /sys/fs/bpf/<node> (the local
 * cluster's layout); else the only weft pin directory present. Several: say so and list them.
 */
export function choosePinDir(opts: { pinDir?: string; agentPinDir?: string; node?: string }, root = BPFFS): { dir: string; how: string } {
  if (opts.pinDir) return { dir: opts.pinDir, how: "--pin-dir" };
  if (opts.agentPinDir) return { dir: opts.agentPinDir, how: "the agent's --pin-dir" };
  const defaultDir = root === BPFFS ? DEFAULT_PIN_DIR : join(root, "weft");
  if (hasMeta(defaultDir)) return { dir: defaultDir, how: "default" };
  if (opts.node && hasMeta(join(root, opts.node))) return { dir: join(root, opts.node), how: `node ${opts.node}` };
  const found = weftPinDirs(root);
  if (found.length === 1) return { dir: found[0] as string, how: "the only weft pin directory" };
  if (found.length > 1)
    throw new CliError(
      `several weft pin directories are on this node (${found.join(", ")}): choose one with --pin-dir <dir> (or --node <name>)`,
    );
  return { dir: defaultDir, how: "default" };
}

/**
 * Finds the directories of cgroup ids by walking the cgroup v2 tree breadth first (bounded, so a
 * huge hierarchy cannot stall the command). Ids not found are absent from the result.
 */
export function cgroupPaths(root: string, ids: ReadonlySet<string>, maxDirs = 50_000): Map<string, string> {
  const found = new Map<string, string>();
  if (ids.size === 0) return found;
  const queue = [root];
  let seen = 0;
  while (queue.length > 0 && found.size < ids.size && seen < maxDirs) {
    const dir = queue.shift() as string;
    seen++;
    try {
      const ino = String(statSync(dir, { bigint: true }).ino);
      if (ids.has(ino)) found.set(ino, dir);
      for (const e of readdirSync(dir, { withFileTypes: true })) if (e.isDirectory()) queue.push(join(dir, e.name));
    } catch {
      // a cgroup removed while walking
    }
  }
  return found;
}

/** A cgroup path shown relative to the cgroup v2 mount. */
export function shortCgroup(root: string, path: string | undefined): string {
  if (!path) return "-";
  const r = relative(root, path);
  return r === "" ? "/" : r;
}
