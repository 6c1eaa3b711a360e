/**
 * A root operator's command that writes into a controller's state directory (a token, a root
 * rotation) acts as the directory's owner: a controller that runs under its own uid could not
 * read root-owned files it finds there.
 */
import { statSync } from "node:fs";

/** When root and the directory belongs to another user, becomes that user (and its group) for the rest of the process. */
export function actAsStateDirOwner(dir: string): void {
  if (process.getuid?.() !== 0) return;
  let owner: { uid: number; gid: number };
  try {
    owner = statSync(dir);
  } catch {
    return; // not there yet: whoever creates it owns it
  }
  if (owner.uid === 0) return;
  process.setgroups?.([]);
  process.setgid?.(owner.gid);
  process.setuid?.(owner.uid);
  if (process.getuid?.() !== owner.uid) throw new Error(`could not switch to uid ${owner.uid}, the owner of ${dir}`);
}
