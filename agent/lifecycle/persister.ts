/**
 * Keeps the state directory in step with what the agent accepted: the config after each applied
 * push, the certificates after each issue or drop. Writes are coalesced (one per burst) and a
 * failed write is logged, never fatal: the agent serves from memory; only a later cold start
 * would miss it.
 */
import { errorMessage } from "../../common/errors.js";
import type { Logger } from "../../common/log.js";
import type { IdentityManager } from "../identity/manager.js";
import type { StateUpdater } from "../state/updater.js";
import { saveCerts } from "./persisted-certs.js";
import { saveConfig } from "./persisted-config.js";

/** Options of the persister. */
export interface PersisterOptions {
  dir: string;
  node: string;
  updater: StateUpdater;
  identity: IdentityManager;
  log: Logger;
  /** Coalescing window (default 200 ms). */
  delayMs?: number;
}

/** Writes the agent's state to its state directory as it changes. */
export class StatePersister {
  private readonly off: (() => void)[] = [];
  private timer: NodeJS.Timeout | undefined;
  private dirty = { config: false, certs: false };
  /** Files written since start (status, tests). */
  writes = 0;
  lastError: string | undefined;

  constructor(private readonly opts: PersisterOptions) {}

  /**
   * Follows state and certificates. The config held now is saved (once synced); certificates only
   * when they change, so an agent starting beside its predecessor never replaces the saved ones
   * with the none it holds yet.
   */
  start(): void {
    this.off.push(this.opts.updater.state.subscribe(() => this.mark("config")));
    this.off.push(this.opts.identity.onChange(() => this.mark("certs")));
    this.mark("config");
  }

  /**
   * Stops writing without a last flush: at a handover the successor owns the directory from now
   * on, and an older write landing after its newer one would go back in time.
   */
  stop(): void {
    for (const f of this.off.splice(0)) f();
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  private mark(what: "config" | "certs"): void {
    this.dirty[what] = true;
    if (this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.flush();
    }, this.opts.delayMs ?? 200);
    this.timer.unref();
  }

  /** Writes whatever changed now. */
  flush(): void {
    const { dir, node, updater, identity } = this.opts;
    try {
      if (this.dirty.config && saveConfig(dir, updater)) this.writes++;
      this.dirty.config = false;
      if (this.dirty.certs) {
        saveCerts(dir, node, identity.held());
        this.writes++;
      }
      this.dirty.certs = false;
      this.lastError = undefined;
    } catch (e) {
      this.lastError = errorMessage(e);
      this.opts.log.warn({ dir, err: this.lastError }, "cannot persist the agent's state; a cold start would wait for the controller");
    }
  }

  /** Section of /status. */
  status(): object {
    return { dir: this.opts.dir, writes: this.writes, ...(this.lastError ? { lastError: this.lastError } : {}) };
  }
}
