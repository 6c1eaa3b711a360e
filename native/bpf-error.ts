/**
 * The one error type for libbpf and BPF syscalls: the operation, the errno name and what an
 * operator should check. libbpf int functions return -errno; pointer functions return NULL and
 * set errno; both end up here.
 */
import { constants } from "node:os";
import { KernelError } from "../common/errors.js";

const ERRNO_NAMES: ReadonlyMap<number, string> = new Map(Object.entries(constants.errno).map(([name, n]) => [n, name]));

/** errno number → name ("EPERM"), or "errno <n>" for one Node does not know. */
export function errnoName(errno: number): string {
  return ERRNO_NAMES.get(errno) ?? `errno ${errno}`;
}

/** errno name → number; throws for an unknown name (a typo in code, not bad input). */
export function errnoNumber(name: string): number {
  const n = (constants.errno as Record<string, number>)[name];
  if (n === undefined) throw new Error(`unknown errno name ${name}`);
  return n;
}

/** What an operator should check for each errno, phrased for the agent's logs. */
const HINTS: Readonly<Record<string, string>> = {
  EPERM: "the agent needs CAP_BPF and CAP_NET_ADMIN (and CAP_SYS_ADMIN to attach to cgroups): run it as root or privileged",
  EACCES: "permission denied: run as root; for a program load this is also how the verifier rejects a program (see the log above)",
  ENOENT: "not found: the pinned object, cgroup, interface or object file does not exist",
  EEXIST: "already exists: another agent may own this pin directory",
  EINVAL: "the kernel rejected the arguments: check the kernel version (TCX needs 6.6+, the cgroup hooks 5.8+)",
  E2BIG: "the kernel does not know part of the request: the kernel is too old for this program or attach type",
  ENOTSUP: "not supported by this kernel",
  EOPNOTSUPP: "not supported by this kernel",
  ENODEV: "no such network interface in this network namespace",
  EBADF: "bad file descriptor: the object was closed",
  ENOMEM: "out of memory: the map may be full, or (kernels before 5.11) RLIMIT_MEMLOCK is too low",
  E2SMALL: "buffer too small",
  ENOSPC: "the map is full",
  EBUSY: "busy: something else is attached here",
  ESRCH: "no such object: it was removed meanwhile",
};

/** A failed libbpf call or BPF syscall. */
export class BpfError extends KernelError {
  override readonly name = "BpfError";
  /** errno name, e.g. "EPERM". */
  readonly errnoName: string;
  constructor(
    /** What was being done, e.g. "attach weft_connect4 to /sys/fs/cgroup/x". */
    readonly op: string,
    /** Positive errno. */
    readonly errno: number,
    detail?: string,
  ) {
    const code = errnoName(errno);
    const hint = HINTS[code];
    super(`${op}: ${code}${detail ? ` (${detail})` : ""}${hint ? `: ${hint}` : ""}`);
    this.errnoName = code;
  }
}

/** Turns a libbpf int return (-errno on failure) into a value or a BpfError. */
export function checkInt(op: string, ret: number, errnoNow: () => number): number {
  if (ret >= 0) return ret;
  // Some libbpf paths return -1 and leave the cause in errno.
  const e = ret === -1 ? errnoNow() || 1 : -ret;
  throw new BpfError(op, e);
}

/** Turns a libbpf pointer return (0n + errno on failure) into the pointer or a BpfError. */
export function checkPtr(op: string, ptr: bigint | null, errnoNow: () => number): bigint {
  if (ptr !== null && ptr !== 0n) return ptr;
  throw new BpfError(op, errnoNow() || errnoNumber("ENOENT"));
}
