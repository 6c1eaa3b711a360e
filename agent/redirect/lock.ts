/**
 * One redirect owner per pin directory: two agents writing the same maps would undo each other.
 * The lock is a file holding the owner's pid and start time; a holder that died (SIGKILL, crash)
 * is detected and the lock taken over, so a restart never waits for a dead process.
 */
import { closeSync, mkdirSync, openSync, readFileSync, rmSync, writeSync } from "node:fs";
import { join } from "node:path";
import { WeftError } from "../../common/errors.js";
import { isSameProcess, processStartTime } from "../../native/proc.js";

/** Where pin-dir locks live. */
export const LOCK_DIR = process.env.WEFT_RUN_DIR ? join(process.env.WEFT_RUN_DIR, "redirect") : "/run/weft/redirect";

/** Another live process owns the pin directory. */
export class PinDirBusyError extends WeftError {
  override readonly name = "PinDirBusyError";
  constructor(message: string) {
    super("WEFT_CONFLICT", message);
  }
}

/** Lock file path for a pin directory. */
export function lockPath(pinDir: string): string {
  return join(LOCK_DIR, `${pinDir.replace(/^\/+/, "").replace(/[^a-zA-Z0-9._-]+/g, "_")}.lock`);
}

/** A held lock. */
export class PinDirLock {
  private constructor(private readonly path: string) {}

  /** Takes the lock or throws PinDirBusyError naming the live owner. */
  static acquire(pinDir: string): PinDirLock {
    mkdirSync(LOCK_DIR, { recursive: true });
    const path = lockPath(pinDir);
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        const fd = openSync(path, "wx", 0o644);
        writeSync(fd, `${process.pid} ${processStartTime(process.pid) ?? ""}\n`);
        closeSync(fd);
        return new PinDirLock(path);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
      }
      const [pid, start] = readOwner(path);
      // Our own pid counts too: a second Redirector in this process must not share the maps either.
      if (pid && isSameProcess(pid, start)) {
        throw new PinDirBusyError(`pin directory ${pinDir} is managed by another live process (pid ${pid}); stop it first (lock ${path})`);
      }
      rmSync(path, { force: true }); // its owner is gone
    }
    throw new PinDirBusyError(`could not take the lock ${path} for ${pinDir}`);
  }

  /** Releases the lock. */
  release(): void {
    rmSync(this.path, { force: true });
  }
}

function readOwner(path: string): [number, string] {
  try {
    const [pid, start] = readFileSync(path, "utf8").trim().split(" ");
    return [Number(pid), start ?? ""];
  } catch {
    return [0, ""];
  }
}
