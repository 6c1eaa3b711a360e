/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The userspace ABI of weft's eBPF programs: every struct a map holds, every constant userspace
 * writes, every reason code it reads. agent/redirect/abi.ts mirrors this file and a unit test
 * compares both against the BTF of the built objects, so the two cannot drift silently.
 *
 * Byte order: addresses and ports are stored in network order everywhere (as the packet and
 * struct bpf_sock_addr carry them); cgroup ids and counters are host order.
 *
 * Bump WEFT_ABI_VERSION whenever a map's key or value layout, a map's type or the meaning of a
 * field changes: a restarted agent that finds pinned state with another version replaces it
 * instead of reading it with the wrong layout.
 */
#ifndef WEFT_ABI_H
#define WEFT_ABI_H

#define WEFT_ABI_VERSION 1
/* "weft" in ASCII: tells a weft meta map from anything else pinned under the same name. */
#define WEFT_MAGIC 0x77656674

#define WEFT_MAX_PODS 16384
#define WEFT_MAX_TUPLES 65536
#define WEFT_MAX_EXCLUDES 1024

/*
 * Source address of the node's own connections to pods (kubelet probes), as Istio uses it: the
 * agent SNATs node-originated plaintext toward guarded pods to it, and the guard lets it through
 * only when the packet was made on this node (no ingress interface), so a pod cannot forge it.
 * 169.254.7.127 in network order on a little-endian host is built by bpf_htonl in the program.
 */
#define WEFT_PROBE_IP4_HOST 0xA9FE077FU

/* struct weft_pod.flags */
#define WEFT_POD_CAPTURE (1U << 0)

/* struct weft_guard.mode: what the TCX guard does with plaintext SYNs toward the pod. */
enum weft_inbound_mode {
	WEFT_INBOUND_OFF = 0,
	WEFT_INBOUND_PERMISSIVE = 1,
	WEFT_INBOUND_STRICT = 2,
};

/*
 * Reason codes: every decision a program takes is counted under one of these in weft_stats
 * (a per-CPU array indexed by reason), so an operator can see why a connect was or was not
 * captured without tracing.
 */
enum weft_reason {
	WEFT_R_CAPTURED = 0,         /* connect rewritten to the proxy */
	WEFT_R_NOT_ENROLLED = 1,     /* the calling cgroup is not an enrolled pod */
	WEFT_R_PROXY_SOCKET = 2,     /* the socket carries the proxy mark */
	WEFT_R_LOOPBACK = 3,         /* destination is loopback or unspecified */
	WEFT_R_EXCLUDED = 4,         /* destination matched weft_exclude */
	WEFT_R_TO_PROXY = 5,         /* destination is the proxy address itself */
	WEFT_R_SELF = 6,             /* the pod dialled its own address */
	WEFT_R_NOT_TCP = 7,          /* not a TCP stream socket */
	WEFT_R_IPV6 = 8,             /* native IPv6 destination: not captured */
	WEFT_R_NO_STORAGE = 9,       /* could not record the original destination: failed closed */
	WEFT_R_TUPLE_RECORDED = 10,  /* sockops stored the 4-tuple of a captured connection */
	WEFT_R_TUPLE_FAILED = 11,    /* sockops could not store it (the proxy falls back to nothing) */
	WEFT_R_SOCKNAME = 12,        /* getsockname on the proxy reported an original destination */
	WEFT_R_PEERNAME = 13,        /* getpeername in a pod reported the address it dialled */
	WEFT_R_SOCK_MARKED = 14,     /* sock_create marked a proxy socket */
	WEFT_R_GUARD_DROP = 15,      /* STRICT: unmarked SYN toward an enrolled pod dropped */
	WEFT_R_GUARD_MARKED = 16,    /* SYN from the proxy (marked) let through */
	WEFT_R_GUARD_PERMISSIVE = 17,/* PERMISSIVE: unmarked SYN let through */
	WEFT_R_TUPLE_CLOSED = 18,    /* sockops removed the 4-tuple of a closed connection */
	WEFT_R_GUARD_PROBE = 19,     /* SYN from the node itself, SNATed to the probe address: let through */
	WEFT_R_SOURCE_SPOOFED = 20,  /* an enrolled pod's socket bound to an address not its own: refused */
	WEFT_R_SOURCE_MISMATCH = 21, /* a captured connection left from an address not its pod's: not recorded */
	WEFT_R_MAX = 32,
};

/*
 * Load-time constants (.rodata, `const volatile`), the same struct in every object so userspace
 * sets them with one encoder. It must be the only variable in .rodata (the ABI test checks).
 */
struct weft_config {
	__u32 proxy_ip4;   /* network order: where captured connects go (the pods' gateway) */
	__u16 proxy_port;  /* network order */
	__u16 _pad0;
	__u32 proxy_mark;  /* SO_MARK of the proxy's sockets */
	__u32 pod_level;   /* cgroup level of the pods' parent (0: key by the task's own cgroup) */
};

/*
 * weft_pods: key = cgroup id (__u64, the pod cgroup directory's inode number). A task belongs to
 * the pod whose cgroup is one of its ancestors at pod_level+1..+3 (kubelet: kubepods/[qos/]pod/
 * container scope; the local cluster: the pod's cgroup itself), or its own when pod_level is 0.
 */
struct weft_pod {
	__u32 flags;   /* WEFT_POD_* */
	__u32 ip4;     /* network order: the pod's own address (dialling it is never captured) */
};

/* weft_guard: key = pod IPv4 (__u32, network order). */
struct weft_guard {
	__u32 mode;    /* enum weft_inbound_mode */
	__u32 ifindex; /* host-side veth the guard runs on (for dumps; the program does not need it) */
};

/* The original destination of a captured connection (sk storage and weft_tuples values). */
struct weft_orig {
	__u32 ip4;        /* network order */
	__u16 port;       /* network order */
	__u16 _pad0;
	__u64 cgroup_id;  /* the client pod's cgroup: who made the connection */
};

/* weft_tuples key: the captured connection as the client sees it (pod -> proxy), network order. */
struct weft_tuple4 {
	__u32 saddr;
	__u32 daddr;
	__u16 sport;
	__u16 dport;
};

/*
 * weft_exclude (LPM trie) key. The prefix covers port, then the zero pad, then the address, so
 * a lookup is done twice: with the real port (entries "cidr:port") and with port 0 (entries
 * that exclude every port). prefixlen = 32 + CIDR prefix length.
 */
struct weft_exclude_key {
	__u32 prefixlen;
	__u16 port;   /* network order; 0 = every port */
	__u16 _pad0;
	__u32 addr;   /* network order */
};

struct weft_exclude_value {
	__u32 flags;  /* reserved, 1 */
};

/* weft_meta[0]: who wrote the pinned state, read by a restarted agent before anything else. */
struct weft_meta {
	__u32 magic;        /* WEFT_MAGIC */
	__u32 abi_version;  /* WEFT_ABI_VERSION of the agent that created the maps */
	__u64 created_ns;   /* CLOCK_REALTIME of creation, for dumps */
};

#endif /* WEFT_ABI_H */
