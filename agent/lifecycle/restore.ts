/**
 * A cold start from the state directory: the last accepted config (the agent counts as synced
 * and serves it until the controller answers) and the certificates still valid. A file that
 * cannot be used is reported and ignored: the agent then waits for the controller as before.
 */
import { X509Certificate } from "node:crypto";
import { errorMessage } from "../../common/errors.js";
import type { Logger } from "../../common/log.js";
import { fingerprint256 } from "../../common/pki/x509.js";
import type { IdentityManager } from "../identity/manager.js";
import type { StateUpdater } from "../state/updater.js";
import { loadCerts } from "./persisted-certs.js";
import { loadConfig, restoreConfig } from "./persisted-config.js";

/** What the state directory gave (for /status). */
export interface Restored {
  /** When the restored config was saved. */
  config?: string;
  certificates?: number;
  problems: string[];
}

/** Loads dir's config into the updater and its certificates into the identity manager (before they start). */
export function restoreState(o: { dir: string; node: string; updater: StateUpdater; identity: IdentityManager; log: Logger }): Restored {
  const restored: Restored = { problems: [] };
  try {
    const loaded = loadConfig(o.dir, o.node);
    if (loaded) {
      restoreConfig(o.updater, loaded);
      restored.config = loaded.savedAt;
      o.log.info({ dir: o.dir, savedAt: loaded.savedAt }, "serving the config persisted by the last run until the controller answers");
    }
  } catch (e) {
    restored.problems.push(`config: ${errorMessage(e)}`);
    o.log.warn({ dir: o.dir, err: errorMessage(e) }, "persisted config not usable; waiting for the controller");
  }
  try {
    const certs = loadCerts(o.dir, o.node);
    if (certs) {
      // Only certificates under a root of the restored trust bundle: one signed by another CA
      // (the directory outlived its cluster) would be refused by every peer.
      const roots = new Set((o.updater.state.get().trustBundle?.rootsPem ?? []).map((p) => fingerprint256(new X509Certificate(p))));
      for (const c of certs.certificates.filter((c) => !roots.has(c.signedBy)))
        certs.skipped.push(`${c.cert.identity}: signed under a root the restored trust bundle does not hold`);
      const usable = certs.certificates.filter((c) => roots.has(c.signedBy));
      o.identity.restore(usable);
      restored.certificates = usable.length;
      restored.problems.push(...certs.skipped.map((s) => `certificate: ${s}`));
      if (certs.skipped.length) o.log.info({ dir: o.dir, skipped: certs.skipped }, "persisted certificates left out (requested again)");
    }
  } catch (e) {
    restored.problems.push(`certificates: ${errorMessage(e)}`);
    o.log.warn({ dir: o.dir, err: errorMessage(e) }, "persisted certificates not usable; requesting new ones");
  }
  return restored;
}
