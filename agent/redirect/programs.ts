/**
 * The catalogue of weft's programs: which object holds each, where it attaches and under which
 * name its link is pinned. The order is the attach order on a fresh install: everything that
 * makes a captured connection work (sockops, getpeername, getsockname, the proxy mark) is in
 * place before connect starts capturing.
 */
import { ATTACH } from "../../native/libbpf.js";

/** A program attached to a cgroup through a pinned link. */
export interface CgroupHook {
  /** Object file in the object dir. */
  object: string;
  /** Program (function) name in that object. */
  program: string;
  /** Which cgroup of RedirectConfig it attaches to. */
  target: "pods" | "proxy";
  /** enum bpf_attach_type. */
  attachType: number;
}

/** Cgroup hooks in attach order. */
export const CGROUP_HOOKS: readonly CgroupHook[] = [
  { object: "sock_create.o", program: "weft_sock_mark", target: "proxy", attachType: ATTACH.CGROUP_SOCK_CREATE },
  { object: "getsockname.o", program: "weft_getsock4", target: "proxy", attachType: ATTACH.CGROUP_INET4_GETSOCKNAME },
  { object: "getsockname.o", program: "weft_getsock6", target: "proxy", attachType: ATTACH.CGROUP_INET6_GETSOCKNAME },
  { object: "sockops.o", program: "weft_sockops", target: "pods", attachType: ATTACH.CGROUP_SOCK_OPS },
  { object: "getpeername.o", program: "weft_getpeer4", target: "pods", attachType: ATTACH.CGROUP_INET4_GETPEERNAME },
  { object: "getpeername.o", program: "weft_getpeer6", target: "pods", attachType: ATTACH.CGROUP_INET6_GETPEERNAME },
  { object: "connect.o", program: "weft_connect4", target: "pods", attachType: ATTACH.CGROUP_INET4_CONNECT },
  { object: "connect.o", program: "weft_connect6", target: "pods", attachType: ATTACH.CGROUP_INET6_CONNECT },
];

/** The TCX guard (one link per guarded pod's host-side veth, egress). */
export const GUARD = { object: "guard.o", program: "weft_tcx_guard" } as const;

/** Every object file redirect loads. */
export const OBJECT_FILES: readonly string[] = [...new Set([...CGROUP_HOOKS.map((h) => h.object), GUARD.object])];

/** Pin name of a cgroup hook's link. */
export function hookPinName(h: CgroupHook): string {
  return `link_${h.program}`;
}

/** Pin name of the guard link on an interface (by ifindex: a re-created veth gets a new one). */
export function guardPinName(ifindex: number): string {
  return `guard_if${ifindex}`;
}

/** ifindex of a guard pin name, or null for any other name. */
export function guardPinIfindex(name: string): number | null {
  const m = /^guard_if(\d+)$/.exec(name);
  return m ? Number(m[1]) : null;
}
