/**
 * Handover between two agents of one node, as Envoy's hot restart and ztunnel do it, adapted:
 * the node's agent is named by a pidfile (/run/weft/agent-<node>.pid: pid and start time, so a
 * recycled pid is never mistaken for it). A new agent that finds a live predecessor first gets
 * ready to serve (config and certificates, from its state directory or the controller), then binds
 * its proxy listeners into the same SO_REUSEPORT groups, and only then sends the predecessor
 * SIGTERM. The predecessor releases what one agent per node may hold (BPF pin-dir lock, admin API,
 * metrics and readiness ports, the xDS stream, this pidfile), then closes its listeners (with
 * net.ipv4.tcp_migrate_req=1 the connections queued on them move to the successor's) and drains.
 * The successor waits for that release, claims the pidfile and takes over capture.
 */
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import type { Logger } from "../../common/log.js";
import { isSameProcess, processStartTime, signal } from "../../native/proc.js";

/** Where agents' pidfiles live (beside the admin sockets). */
export function runDir(env: NodeJS.ProcessEnv = process.env): string {
  return env.WEFT_RUN_DIR ?? "/run/weft";
}

/** A live agent process. */
export interface AgentProcess {
  pid: number;
  startTime: string;
}

/** The node's pidfile. */
export class AgentPidFile {
  readonly path: string;

  constructor(node: string, dir = runDir()) {
    this.path = join(dir, `agent-${node}.pid`);
  }

  /** The live agent the file names, other than this process; null when none (or it died). */
  holder(): AgentProcess | null {
    let text: string;
    try {
      text = readFileSync(this.path, "utf8");
    } catch {
      return null;
    }
    const [pid, startTime = ""] = text.trim().split(" ");
    const n = Number(pid);
    if (!Number.isInteger(n) || n <= 0 || n === process.pid) return null;
    return isSameProcess(n, startTime) ? { pid: n, startTime } : null;
  }

  /** Names this process as the node's agent; throws when the run directory is not writable. */
  claim(): void {
    mkdirSync(dirname(this.path), { recursive: true });
    writeFileSync(this.path, `${process.pid} ${processStartTime(process.pid) ?? ""}\n`, { mode: 0o644 });
  }

  /** Removes the file if it still names this process (a successor may already have claimed it). */
  release(): void {
    try {
      if (Number(readFileSync(this.path, "utf8").trim().split(" ")[0]) === process.pid) rmSync(this.path, { force: true });
    } catch {
      // already gone
    }
  }
}

/**
 * Asks the predecessor to hand over (SIGTERM) and resolves once it has released the node-wide
 * resources: its pidfile no longer names it, or it is gone. Throws after timeoutMs, naming it.
 */
export async function takeOver(file: AgentPidFile, from: AgentProcess, timeoutMs: number, log: Logger): Promise<void> {
  log.info({ predecessor: from.pid }, "handing over from the running agent: it stops accepting and drains");
  signal(from.pid, "SIGTERM");
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const holder = file.holder();
    if (holder?.pid !== from.pid) return;
    if (Date.now() > deadline)
      throw new Error(
        `the running agent (pid ${from.pid}) did not release the node within ${Math.round(timeoutMs / 1000)} s of SIGTERM; stop it and start again`,
      );
    await new Promise((r) => setTimeout(r, 50));
  }
}
