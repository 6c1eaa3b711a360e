/**
 * The handover's two steps as agent components (structurally AgentComponents, so this module
 * does not import the composition root): wait until this agent can serve, and, once its proxy
 * listens beside the predecessor's, take over from it and claim the node.
 */
import { errorMessage } from "../../common/errors.js";
import type { Logger } from "../../common/log.js";
import { type AgentPidFile, type AgentProcess, takeOver } from "./handover.js";
import type { Restored } from "./restore.js";

/** A lifecycle step as the composition root runs it. */
export interface LifecycleStep {
  readonly name: string;
  start(): Promise<void>;
  stop(): void;
  status?(): unknown;
}

/**
 * Before a successor binds its listeners next to a running agent's: wait until it can serve
 * (config and certificates), so no connection it accepts finds it unready. Without a
 * predecessor nothing waits, as before: capture stays off until the state is synced.
 */
export function awaitServing(o: { predecessor: () => AgentProcess | null; reasons: () => string[]; log: Logger }): LifecycleStep {
  return {
    name: "await-serving",
    start: async () => {
      const from = o.predecessor();
      if (!from) return;
      let lastLog = 0;
      for (;;) {
        const reasons = o.reasons();
        if (reasons.length === 0) return;
        if (Date.now() - lastLog > 10_000) {
          lastLog = Date.now();
          o.log.info({ predecessor: from.pid, reasons }, "waiting to be able to serve before taking over");
        }
        await new Promise((r) => setTimeout(r, 50));
      }
    },
    stop: () => undefined,
  };
}

/** Takes over from the predecessor (its listeners and ours now share the ports), then claims the node. */
export function handover(o: {
  pidFile: AgentPidFile;
  predecessor: () => AgentProcess | null;
  restored: () => Restored;
  log: Logger;
}): LifecycleStep {
  return {
    name: "handover",
    start: async () => {
      const from = o.predecessor();
      if (from) {
        await takeOver(o.pidFile, from, 60_000, o.log);
        o.log.info({ predecessor: from.pid }, "took over from the previous agent (it drains its connections)");
      }
      try {
        o.pidFile.claim();
      } catch (e) {
        // Serving goes on; only a later handover would not find this agent.
        o.log.warn(
          { pidFile: o.pidFile.path, err: errorMessage(e) },
          "cannot write the pidfile: a new agent could not take over from this one",
        );
      }
    },
    stop: () => o.pidFile.release(),
    status: () => ({ pidFile: o.pidFile.path, predecessor: o.predecessor()?.pid ?? null, restored: o.restored() }),
  };
}
