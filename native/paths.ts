/** File existence by stat(2), which uses the effective credentials. */
import { statSync } from "node:fs";

/**
 * True when the path exists. Not existsSync: that is access(2), which checks the *real* uid and so
 * misreads paths a process may use through capabilities or a setuid change (a dropped-privilege
 * process, a checkout under a 0700 directory).
 */
export function pathExists(path: string): boolean {
  try {
    return statSync(path, { throwIfNoEntry: false }) !== undefined;
  } catch {
    return false;
  }
}
