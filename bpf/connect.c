// SPDX-License-Identifier: Apache-2.0
/*
 * cgroup/connect4 and cgroup/connect6, attached to the parent cgroup of the node's pods.
 *
 * An enrolled pod's TCP connect() is rewritten to the node proxy (weft_cfg.proxy_ip4:proxy_port)
 * and the original destination is stored on the socket (weft_sk_orig); sockops later copies it
 * into weft_tuples by 4-tuple for the proxy. Nothing is captured for pods that are not enrolled,
 * the proxy's own (marked) sockets, loopback, the proxy address, the pod's own address or an
 * excluded destination. connect6 handles IPv4-mapped destinations (dual-stack sockets dialling an
 * IPv4 peer); native IPv6 is not captured (weft's pod network is IPv4).
 */
#include "weft_common.h"

/* True when dst:port (network order) is in weft_exclude, for that port or for every port. */
static __always_inline int excluded(__u32 dst, __u16 port)
{
	struct weft_exclude_key key = {
		.prefixlen = 64,
		.port = port,
		.addr = dst,
	};

	if (bpf_map_lookup_elem(&weft_exclude, &key))
		return 1;
	key.port = 0;
	return bpf_map_lookup_elem(&weft_exclude, &key) != NULL;
}

/*
 * The enrolled pod the current task belongs to, or NULL; *cgid gets the pod's cgroup id. Kubelet
 * puts a pod's processes in container scopes one level below the pod's own cgroup, which sits one
 * (Guaranteed) or two (Burstable, BestEffort) levels below kubepods: so the ancestors at
 * pod_level+1..+3 are tried, and the first one enrolled is the pod.
 */
static __always_inline struct weft_pod *current_pod(__u64 *cgid)
{
	struct weft_pod *pod;
	__u64 id;
	int i;

	if (!weft_cfg.pod_level) {
		*cgid = bpf_get_current_cgroup_id();
		return bpf_map_lookup_elem(&weft_pods, cgid);
	}
#pragma unroll
	for (i = 1; i <= 3; i++) {
		id = bpf_get_current_ancestor_cgroup_id(weft_cfg.pod_level + i);
		if (!id)
			break;
		pod = bpf_map_lookup_elem(&weft_pods, &id);
		if (pod) {
			*cgid = id;
			return pod;
		}
	}
	*cgid = 0;
	return NULL;
}

/*
 * Decides whether this connect is captured. Returns WEFT_R_CAPTURED after recording the original
 * destination on the socket, another reason (>= 0) to leave it alone, or -errno when it should
 * be captured but cannot be (the caller fails closed).
 */
static __always_inline int capture(struct bpf_sock_addr *ctx, __u32 dst, __u16 port)
{
	struct bpf_sock *sk = ctx->sk;
	struct weft_orig *orig;
	struct weft_pod *pod;
	__u64 cgid;

	if (ctx->type != SOCK_STREAM || ctx->protocol != IPPROTO_TCP)
		return WEFT_R_NOT_TCP;
	pod = current_pod(&cgid);
	if (!pod || !(pod->flags & WEFT_POD_CAPTURE))
		return WEFT_R_NOT_ENROLLED;
	if (!sk)
		return -EINVAL;
	if (weft_cfg.proxy_mark && sk->mark == weft_cfg.proxy_mark)
		return WEFT_R_PROXY_SOCKET;
	if (weft_is_local4(dst))
		return WEFT_R_LOOPBACK;
	if (dst == weft_cfg.proxy_ip4)
		return WEFT_R_TO_PROXY;
	if (dst == pod->ip4)
		return WEFT_R_SELF;
	if (excluded(dst, port))
		return WEFT_R_EXCLUDED;
	/*
	 * The proxy attributes a captured connection by its source address, so that address must be
	 * the pod's own: a pod with CAP_NET_ADMIN could otherwise bind (IP_TRANSPARENT/FREEBIND) to
	 * another pod's address and be tunnelled under that pod's identity. An unbound socket is
	 * checked again by sockops once the kernel has chosen its source.
	 */
	if (sk->src_ip4 && sk->src_ip4 != pod->ip4)
		return WEFT_R_SOURCE_SPOOFED;

	orig = bpf_sk_storage_get(&weft_sk_orig, sk, NULL, BPF_SK_STORAGE_GET_F_CREATE);
	if (!orig)
		return -ENOMEM;
	orig->ip4 = dst;
	orig->port = port;
	orig->cgroup_id = cgid;
	return WEFT_R_CAPTURED;
}

/* Maps a capture() result to the hook's verdict, counting it. */
static __always_inline int verdict(int r)
{
	if (r < 0) {
		/* Enrolled but unrecordable: refuse rather than let the pod bypass the mesh. */
		weft_count(WEFT_R_NO_STORAGE);
		return SOCK_DENY;
	}
	if (r == WEFT_R_SOURCE_SPOOFED) {
		weft_count(r);
		return SOCK_DENY;
	}
	weft_count(r);
	return SOCK_ALLOW;
}

SEC("cgroup/connect4")
int weft_connect4(struct bpf_sock_addr *ctx)
{
	__u32 dst = ctx->user_ip4;
	__u16 port = (__u16)ctx->user_port;
	int r = capture(ctx, dst, port);

	if (r == WEFT_R_CAPTURED) {
		ctx->user_ip4 = weft_cfg.proxy_ip4;
		ctx->user_port = weft_cfg.proxy_port;
	}
	return verdict(r);
}

SEC("cgroup/connect6")
int weft_connect6(struct bpf_sock_addr *ctx)
{
	__u32 w0 = ctx->user_ip6[0], w1 = ctx->user_ip6[1], w2 = ctx->user_ip6[2];
	__u16 port = (__u16)ctx->user_port;
	__u32 dst;
	int r;

	if (!weft_is_mapped6(w0, w1, w2)) {
		/* Count only sockets we would otherwise have captured, not every IPv6 connect. */
		__u64 cgid;

		if (current_pod(&cgid))
			weft_count(WEFT_R_IPV6);
		return SOCK_ALLOW;
	}
	dst = ctx->user_ip6[3];
	r = capture(ctx, dst, port);
	if (r == WEFT_R_CAPTURED) {
		ctx->user_ip6[0] = 0;
		ctx->user_ip6[1] = 0;
		ctx->user_ip6[2] = bpf_htonl(0x0000ffff);
		ctx->user_ip6[3] = weft_cfg.proxy_ip4;
		ctx->user_port = weft_cfg.proxy_port;
	}
	return verdict(r);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
