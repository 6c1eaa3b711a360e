/**
 * The few libc calls weft needs that Node does not offer: setns (run a step inside a node's
 * netns), if_nametoindex (TCX wants an ifindex) and errno. Control path only.
 */
import { closeSync, openSync } from "node:fs";
import koffi from "koffi";
import { BpfError } from "./bpf-error.js";

/** CLONE_NEWNET: the namespace type setns joins. */
export const CLONE_NEWNET = 0x40000000;

interface Libc {
  setns: (fd: number, nstype: number) => number;
  if_nametoindex: (name: string) => number;
}

let cached: Libc | undefined;

function libc(): Libc {
  if (cached) return cached;
  const lib = koffi.load("libc.so.6");
  cached = {
    setns: lib.func("int setns(int fd, int nstype)") as Libc["setns"],
    if_nametoindex: lib.func("unsigned int if_nametoindex(const char *ifname)") as Libc["if_nametoindex"],
  };
  return cached;
}

/** errno of the last FFI call on this thread (read it right after the call). */
export function lastErrno(): number {
  return koffi.errno();
}

/** ifindex of an interface in the calling thread's netns; throws naming the interface. */
export function ifNameToIndex(name: string): number {
  if (name.length === 0 || name.length > 15) throw new Error(`interface name '${name}': must be 1 to 15 characters`);
  const idx = libc().if_nametoindex(name);
  if (idx === 0) throw new BpfError(`look up interface '${name}'`, lastErrno() || 19);
  return idx;
}

/**
 * Runs fn with the calling (main) thread inside the netns at nsPath, and always switches back.
 * Only this thread moves: libuv's pool threads stay where they are, so fn must be synchronous
 * and make its kernel calls itself (as bpf_link_create through FFI does).
 */
export function withNetns<T>(nsPath: string, fn: () => T): T {
  const target = openSync(nsPath, "r");
  const home = openSync("/proc/thread-self/ns/net", "r");
  try {
    if (libc().setns(target, CLONE_NEWNET) !== 0) throw new BpfError(`enter netns ${nsPath}`, lastErrno() || 1);
    try {
      return fn();
    } finally {
      if (libc().setns(home, CLONE_NEWNET) !== 0) {
        // Staying in the wrong netns would silently misroute every later socket of this process.
        process.stderr.write(`weft: fatal: could not return to the original netns after ${nsPath}\n`);
        process.abort();
      }
    }
  } finally {
    closeSync(target);
    closeSync(home);
  }
}
