/** Helpers for the node CLI's integration tests: a `weft tap` running in the background, stopping an agent. */
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import type { TapLine } from "../../agent/admin-debug.js";
import { signal, waitGone } from "../../native/proc.js";
import { requireState } from "../../scripts/cluster/cluster.js";
import { agentSocket } from "../../scripts/cluster/mesh.js";
import { waitFor } from "./wait.js";
import { WEFT_BIN } from "./weft.js";

/** How a background CLI process ended. */
export interface Ended {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** A `weft tap -o json` in the background. */
export interface Tap {
  /** Open/close events received so far. */
  events: Extract<TapLine, { type: "open" | "close" }>[];
  /** Sends SIGINT (Ctrl-C) and resolves with how it exited. */
  stop(): Promise<Ended>;
  /** Resolves when the process exits by itself. */
  exited: Promise<Ended>;
}

/** Spawns `weft <args>`, collecting its output. */
export function spawnWeft(args: readonly string[]): {
  child: ReturnType<typeof spawn>;
  out: { stdout: string; stderr: string };
  exited: Promise<Ended>;
} {
  const child = spawn(process.execPath, [WEFT_BIN, ...args], { stdio: ["ignore", "pipe", "pipe"] });
  const out = { stdout: "", stderr: "" };
  child.stdout?.on("data", (d) => {
    out.stdout += d;
  });
  child.stderr?.on("data", (d) => {
    out.stderr += d;
  });
  const exited = new Promise<Ended>((resolve) => child.once("exit", (code, sig) => resolve({ code, signal: sig, ...out })));
  return { child, out, exited };
}

/** Starts `weft tap -o json <args>` and waits until it is subscribed. */
export async function startTap(args: readonly string[]): Promise<Tap> {
  const { child, out, exited } = spawnWeft(["tap", "-o", "json", ...args]);
  let ended = false;
  void exited.then(() => {
    ended = true;
  });
  await waitFor(
    "weft tap subscribed",
    () => {
      if (ended) throw new Error(`weft tap exited early: ${out.stderr}`);
      return out.stderr.includes("Ctrl-C to stop");
    },
    10_000,
  );
  const tap: Tap = {
    get events() {
      return out.stdout
        .split("\n")
        .filter((l) => l.startsWith("{"))
        .map((l) => JSON.parse(l) as Tap["events"][number]);
    },
    stop: async () => {
      if (!ended) child.kill("SIGINT");
      return exited;
    },
    exited,
  };
  return tap;
}

/** Stops node n's agent like an operator would (SIGTERM) and waits until it is gone and its socket removed. */
export async function stopAgent(cluster: string, n: number): Promise<void> {
  const node = `${cluster}-node${n}`;
  const rec = requireState(cluster).processes.find((p) => p.what === `agent ${node}`);
  if (!rec) throw new Error(`no recorded agent process for ${node}`);
  signal(rec.pid, "SIGTERM");
  const left = await waitGone([rec.pid], 15_000);
  if (left.length) throw new Error(`agent ${node} (pid ${rec.pid}) did not stop within 15 s`);
  await waitFor("admin socket removed", () => !existsSync(agentSocket(cluster, n)), 5000);
}
