/**
 * The cluster's record of what it created: written before each object is made, so a crashed
 * `up` still leaves enough behind for `down` to find everything.
 */
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, writeSync } from "node:fs";
import { dirname, join } from "node:path";
import { errorMessage } from "../../common/errors.js";
import { isSameProcess, processStartTime } from "../../native/proc.js";
import type { ClusterSpec } from "./topology.js";

/** Root of all local clusters' state. */
export const RUN_DIR = process.env.WEFT_RUN_DIR ?? "/run/weft";

/** A port of a service. */
export interface ServicePort {
  name?: string;
  port: number;
  targetPort: number;
  protocol: "TCP";
  appProtocol?: string;
}

/** A pod the harness created. */
export interface PodRecord {
  namespace: string;
  name: string;
  uid: string;
  node: number;
  ip: string;
  slot: number;
  serviceAccount: string;
  labels: Record<string, string>;
  netns: string;
  cgroup: string;
  hostVeth: string;
  createdAt: string;
}

/** A service with its allocated VIP. */
export interface ServiceRecord {
  namespace: string;
  name: string;
  uid: string;
  vip: string;
  ports: ServicePort[];
  selector: Record<string, string>;
  createdAt: string;
}

/** A namespace and its labels (enrolment is by label). */
export interface NamespaceRecord {
  name: string;
  uid: string;
  labels: Record<string, string>;
  createdAt: string;
}

/** A background process the harness started (an app, an agent, the controller). */
export interface ProcessRecord {
  pid: number;
  startTime: string;
  what: string;
  netns: string;
  logFile?: string;
}

/** Everything a cluster is. */
export interface ClusterState {
  version: 1;
  spec: ClusterSpec;
  phase: "creating" | "ready";
  createdAt: string;
  storeDir: string;
  nodes: number[];
  namespaces: NamespaceRecord[];
  pods: PodRecord[];
  services: ServiceRecord[];
  processes: ProcessRecord[];
  nextVethSeq: number;
  nextVip: number;
}

/** Directory holding one cluster's state, logs and (by default) its file store. */
export function stateDir(name: string): string {
  return join(RUN_DIR, name);
}

function statePath(name: string): string {
  return join(stateDir(name), "cluster.json");
}

/** Reads a cluster's state, or null when none was recorded. */
export function loadState(name: string): ClusterState | null {
  const path = statePath(name);
  if (!existsSync(path)) return null;
  const text = readFileSync(path, "utf8");
  try {
    const s = JSON.parse(text) as ClusterState;
    if (s.version !== 1) throw new Error(`unknown state version ${String(s.version)}`);
    return s;
  } catch (e) {
    throw new Error(`cluster state ${path} is unreadable (${errorMessage(e)}); run 'weft cluster down --name ${name}' to clean up`);
  }
}

/** Writes state atomically (temp file + rename) so a crash never leaves half a file. */
export function saveState(state: ClusterState): void {
  const path = statePath(state.spec.name);
  mkdirSync(dirname(path), { recursive: true });
  writeFileAtomic(path, `${JSON.stringify(state, null, 2)}\n`);
}

/** Removes a cluster's whole state directory. */
export function removeState(name: string): void {
  rmSync(stateDir(name), { recursive: true, force: true });
}

/** Writes a file via a temp name and rename, so readers see the old or the new content only. */
export function writeFileAtomic(path: string, content: string): void {
  const tmp = join(dirname(path), `.${process.pid}.${Date.now()}.tmp`);
  const fd = openSync(tmp, "w", 0o644);
  try {
    writeSync(fd, content);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
}

/** An exclusive lock on one cluster, so two CLI calls never interleave their changes. */
export class ClusterLock {
  private constructor(private readonly path: string) {}

  /** Takes the lock, stealing it from a holder that died; waits up to timeoutMs for a live one. */
  static async acquire(name: string, timeoutMs = 60_000): Promise<ClusterLock> {
    mkdirSync(RUN_DIR, { recursive: true });
    const path = join(RUN_DIR, `${name}.lock`);
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      try {
        const fd = openSync(path, "wx");
        writeSync(fd, `${process.pid} ${processStartTime(process.pid) ?? ""}\n`);
        closeSync(fd);
        return new ClusterLock(path);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
      }
      if (holderIsDead(path)) {
        rmSync(path, { force: true });
        continue;
      }
      if (Date.now() > deadline) {
        throw new Error(
          `cluster '${name}' is locked by another weft command (${path}); wait for it or remove the lock if that process is gone`,
        );
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** Releases the lock. */
  release(): void {
    rmSync(this.path, { force: true });
  }
}

function holderIsDead(path: string): boolean {
  try {
    const [pid, start] = readFileSync(path, "utf8").trim().split(" ");
    return !isSameProcess(Number(pid), start ?? "");
  } catch {
    return true;
  }
}

/** Runs fn holding the cluster's lock. */
export async function withLock<T>(name: string, fn: () => Promise<T>): Promise<T> {
  const lock = await ClusterLock.acquire(name);
  try {
    return await fn();
  } finally {
    lock.release();
  }
}
