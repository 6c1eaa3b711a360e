/**
 * `weft redirect serve`: a redirect-only process (the tests' and the local cluster's stand-in for
 * the agent's redirect component). It starts the Redirector, reconciles the pods file, then
 * watches it (and re-reads it every resync period, which also repairs any drift of the maps).
 * SIGTERM/SIGINT close fds and exit 0: the pins keep capture running, and new connects fail closed
 * until an agent is back. A bad pods file is rejected whole and the last good set stays applied.
 */
import { existsSync, type FSWatcher, watch } from "node:fs";
import { basename, dirname } from "node:path";
import pino from "pino";
import { errorMessage } from "../../common/errors.js";
import { readPodsFile } from "./pods-file.js";
import { BpfRedirector } from "./redirector.js";
import type { PodRedirect, RedirectConfig } from "./types.js";

/** What serve needs. */
export interface ServeOptions {
  config: RedirectConfig;
  /** JSON file of PodRedirect[] (watched). */
  podsFile: string;
  /** Node name for logs. */
  nodeName: string;
  /** netns path of the pods' host veths, when not this process's. */
  netnsPath?: string;
  /** Full re-read period (ms). */
  resyncMs: number;
}

/** Runs until SIGTERM/SIGINT; resolves after a clean close. Throws when start() fails. */
export async function serve(opts: ServeOptions): Promise<void> {
  const log = pino({ name: "weft-redirect", base: { node: opts.nodeName, pid: process.pid }, timestamp: pino.stdTimeFunctions.isoTime });
  const redirector = new BpfRedirector(opts.config, {
    log: (msg, fields) => log.info(fields ?? {}, msg),
    ...(opts.netnsPath ? { netnsPath: opts.netnsPath } : {}),
  });
  await redirector.start();
  log.info({ pinDir: opts.config.pinDir, ...redirector.lastStart }, "redirect started");

  let lastText: string | null = null;
  let generation = 0;
  const sync = async (why: string) => {
    let pods: PodRedirect[];
    try {
      if (!existsSync(opts.podsFile)) {
        if (lastText !== "") log.warn({ file: opts.podsFile }, "pods file does not exist yet: keeping the current set");
        lastText = "";
        return;
      }
      pods = readPodsFile(opts.podsFile);
    } catch (e) {
      log.error({ err: errorMessage(e) }, "pods file rejected: keeping the last applied set");
      return;
    }
    try {
      const r = await redirector.reconcile(pods);
      generation++;
      const changed = r.enrolled.length + r.updated.length + r.removed.length + r.failed.length > 0;
      if (changed || why !== "resync") log.info({ generation, why, ...r }, "pods file applied");
    } catch (e) {
      log.error({ err: errorMessage(e) }, "reconcile failed");
    }
  };

  await sync("start");
  let pending: NodeJS.Timeout | null = null;
  const schedule = (why: string) => {
    if (pending) return;
    pending = setTimeout(() => {
      pending = null;
      void sync(why);
    }, 20);
  };
  // Watch the directory: writers replace the file by rename, which a watch on the file would miss.
  let watcher: FSWatcher | null = null;
  try {
    watcher = watch(dirname(opts.podsFile), (_event, name) => {
      if (name === null || name === basename(opts.podsFile)) schedule("change");
    });
  } catch (e) {
    log.warn({ err: errorMessage(e) }, "cannot watch the pods file's directory: relying on the resync period");
  }
  const resync = setInterval(() => void sync("resync"), opts.resyncMs);

  await new Promise<void>((resolve) => {
    const stop = (sig: string) => {
      log.info({ signal: sig }, "stopping: pins stay, capture continues (new connects fail closed until an agent is back)");
      resolve();
    };
    process.once("SIGTERM", () => stop("SIGTERM"));
    process.once("SIGINT", () => stop("SIGINT"));
  });
  clearInterval(resync);
  if (pending) clearTimeout(pending);
  watcher?.close();
  redirector.close();
}
