/**
 * net.ipv4.tcp_migrate_req (per network namespace, Linux >= 5.14): when one listener of a
 * SO_REUSEPORT group closes, the connections in its accept queue (and half-open ones) move to
 * another listener of the group instead of being reset. It is what lets an agent close its
 * listeners at a handover without dropping a SYN that raced with the close.
 */
import { readFileSync, writeFileSync } from "node:fs";
import { errorMessage } from "../../common/errors.js";
import type { Logger } from "../../common/log.js";

const SYSCTL = "/proc/sys/net/ipv4/tcp_migrate_req";

/** Turns request migration on in this netns (idempotent); false (and a warning) when it cannot. */
export function enableRequestMigration(log: Logger, path = SYSCTL): boolean {
  try {
    if (readFileSync(path, "utf8").trim() === "1") return true;
    writeFileSync(path, "1");
    log.info({ sysctl: "net.ipv4.tcp_migrate_req" }, "enabled: connections queued on a closing listener move to its successor");
    return true;
  } catch (e) {
    log.warn(
      { sysctl: "net.ipv4.tcp_migrate_req", err: errorMessage(e) },
      "cannot enable request migration (Linux >= 5.14, writable /proc/sys): a handover may reset connections queued on the old agent's listeners",
    );
    return false;
  }
}
