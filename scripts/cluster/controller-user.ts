/**
 * The local controller runs without root: under its own uid and gid (65532, the "nonroot" user of
 * distroless images, which daemonset/controller.yaml runs it as too), with no capability, no way
 * to gain one (empty bounding set, no_new_privs), in a state directory it owns. It needs none: it
 * binds an unprivileged port, reads the store and writes its state directory.
 *
 * The agents read two things from that directory: the root certificate and their node's token.
 * They run as uid 0 but without CAP_DAC_OVERRIDE (their bounding set, mesh.ts), so they read
 * them as members of the controller's group: directories 0750, tokens 0640, the CA key 0600.
 */
import { spawnSync } from "node:child_process";
import { chmodSync, lchownSync, lstatSync, mkdirSync, readdirSync } from "node:fs";
import { join } from "node:path";

/** uid and gid the local controller runs as; agents join the group to read their tokens. */
export const CONTROLLER_UID = 65532;
/** See CONTROLLER_UID. */
export const CONTROLLER_GID = 65532;

/**
 * argv prefix that runs a command as the controller's user: real and effective ids switched
 * before exec, no supplementary groups, no capabilities now or after any later exec.
 */
export function asControllerUser(argv: readonly string[]): string[] {
  return [
    "setpriv",
    "--reuid",
    String(CONTROLLER_UID),
    "--regid",
    String(CONTROLLER_GID),
    "--clear-groups",
    "--inh-caps",
    "-all",
    "--bounding-set",
    "-all",
    "--no-new-privs",
    "--",
    ...argv,
  ];
}

/** setpriv arguments that put a root process (an agent) in the controller's group as well. */
export function controllerGroupArgs(): string[] {
  return ["--groups", String(CONTROLLER_GID)];
}

/**
 * Creates the controller's state directory (with ca/ and tokens/) owned by the controller's user,
 * and hands over whatever an earlier root-run controller left there: every entry is chowned, the
 * three directories the agents traverse get 0750, tokens 0640. Other modes are kept (the CA key
 * stays 0600, readable by the controller alone).
 */
export function prepareControllerDir(dir: string): void {
  for (const d of [dir, join(dir, "ca"), join(dir, "tokens")]) {
    mkdirSync(d, { recursive: true, mode: 0o750 });
    chmodSync(d, 0o750);
  }
  const walk = (path: string): void => {
    lchownSync(path, CONTROLLER_UID, CONTROLLER_GID);
    const st = lstatSync(path);
    if (st.isDirectory()) for (const e of readdirSync(path)) walk(join(path, e));
    else if (st.isFile() && path.endsWith(".token")) chmodSync(path, 0o640);
  };
  walk(dir);
}

/**
 * Checks, as the controller's user, that it can read (and list) each directory and write the
 * ones marked writable, so a store or state directory it cannot use is reported by name before
 * the controller starts rather than as a failure inside it.
 */
export function checkControllerAccess(dirs: readonly { path: string; write?: boolean }[]): void {
  for (const { path, write } of dirs) {
    const test = ["test", "-d", path, "-a", "-r", path, "-a", "-x", path, ...(write ? ["-a", "-w", path] : [])];
    const [cmd, ...args] = asControllerUser(test);
    const r = spawnSync(cmd as string, args, { stdio: "ignore", timeout: 10_000 });
    if (r.error) throw new Error(`cannot check access for uid ${CONTROLLER_UID} with setpriv: ${r.error.message}`);
    if (r.status !== 0) {
      throw new Error(
        `the controller runs as uid ${CONTROLLER_UID} (gid ${CONTROLLER_GID}) and cannot ${write ? "write" : "read"} ${path}: make it and its parent directories ${write ? "its own" : "readable (r-x) by it"}`,
      );
    }
  }
}
