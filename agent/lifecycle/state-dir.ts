/**
 * The agent's state directory: what it persists so a cold start is ready before the controller
 * answers (the last accepted config, the certificates still valid). It holds private keys, so the
 * directory is root-only (0700), every file 0600, and every write is atomic (temporary file,
 * fsync, rename, fsync of the directory): a crash mid-write leaves the previous file, never half.
 */
import { chmodSync, closeSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, writeSync } from "node:fs";
import { join } from "node:path";

/** Creates the directory (and parents) and makes it root-only. */
export function ensurePrivateDir(dir: string): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  chmodSync(dir, 0o700);
}

/** Replaces dir/name with text atomically, readable by the owner only. */
export function writeAtomic(dir: string, name: string, text: string): void {
  ensurePrivateDir(dir);
  const path = join(dir, name);
  const tmp = `${path}.${process.pid}.tmp`;
  try {
    const fd = openSync(tmp, "w", 0o600);
    try {
      writeSync(fd, text);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, path);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw e;
  }
  const d = openSync(dir, "r");
  try {
    fsyncSync(d);
  } finally {
    closeSync(d);
  }
}

/** dir/name's text, or null when it does not exist. */
export function readIfExists(dir: string, name: string): string | null {
  try {
    return readFileSync(join(dir, name), "utf8");
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw e;
  }
}
