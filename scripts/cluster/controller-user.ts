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
import { chmodSync, lchownSync, lstatSync, mkdirSync, readdirSync, statSync } from "node:fs";
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

/** Whether the controller's user can read a file (every parent directory entered). */
function controllerCanRead(path: string): boolean {
  const [cmd, ...args] = asControllerUser(["test", "-r", path]);
  return spawnSync(cmd as string, args, { stdio: "ignore", timeout: 10_000 }).status === 0;
}

/**
 * argv that runs weft's CLI (`node <root>/dist/agent/cli/main.js …args`) as the controller's
 * user. A checkout below a directory only root may enter (/root/weft, a 0700 mktemp directory)
 * is out of that user's reach even when its own files are world-readable: then the checkout is
 * bind-mounted, in a mount namespace of the controller's own, on `mountPoint` (a directory whose
 * parents it can enter) and run from there. No other process sees the mount; it ends with the
 * controller.
 */
export function controllerCommand(root: string, mountPoint: string, args: readonly string[]): string[] {
  const entry = (r: string) => [process.execPath, join(r, "dist", "agent", "cli", "main.js"), ...args];
  if (controllerCanRead(join(root, "dist", "agent", "cli", "main.js"))) return asControllerUser(entry(root));
  for (const [path, bits] of [
    [root, 0o005],
    [join(root, "package.json"), 0o004],
    [join(root, "dist"), 0o005],
    [join(root, "node_modules"), 0o005],
  ] as const) {
    if ((statSync(path).mode & bits) !== bits)
      throw new Error(
        `the controller runs as uid ${CONTROLLER_UID} and cannot read weft's code at ${path}: make the checkout readable by others (chmod -R o+rX ${root})`,
      );
  }
  mkdirSync(mountPoint, { recursive: true, mode: 0o755 });
  chmodSync(mountPoint, 0o755);
  return [
    "unshare",
    "--mount",
    "--propagation",
    "private",
    "sh",
    "-c",
    'mount --bind "$1" "$2" && shift 2 && exec "$@"',
    "sh",
    root,
    mountPoint,
    ...asControllerUser(entry(mountPoint)),
  ];
}
