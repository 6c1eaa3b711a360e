// SPDX-License-Identifier: Apache-2.0
/*
 * cgroup/getsockname4 and getsockname6, attached to the proxy's cgroup: an accepted socket of a
 * captured connection reports the client's original destination as its local address, so the
 * proxy learns it from socket.localAddress/localPort with no extra syscall or map lookup.
 *
 * The accepted socket sees the connection from the other side: its remote end is the client's
 * source, its local end the proxy's listener, so the weft_tuples key is built crosswise.
 * bpf_sock byte orders: src_port is host order, dst_port network order.
 */
#include "weft_common.h"

/* The original destination of the connection this (accepted) socket belongs to, or NULL. */
static __always_inline struct weft_orig *lookup(struct bpf_sock *sk)
{
	struct weft_tuple4 t = {
		.saddr = sk->dst_ip4,
		.daddr = sk->src_ip4,
		.sport = sk->dst_port,
		.dport = bpf_htons((__u16)sk->src_port),
	};

	if (t.saddr == 0 || t.sport == 0)
		return NULL; /* a listening or unconnected socket */
	return bpf_map_lookup_elem(&weft_tuples, &t);
}

SEC("cgroup/getsockname4")
int weft_getsock4(struct bpf_sock_addr *ctx)
{
	struct weft_orig *orig = lookup(ctx->sk);

	if (orig) {
		ctx->user_ip4 = orig->ip4;
		ctx->user_port = orig->port;
		weft_count(WEFT_R_SOCKNAME);
	}
	return SOCK_ALLOW;
}

SEC("cgroup/getsockname6")
int weft_getsock6(struct bpf_sock_addr *ctx)
{
	__u32 w0 = ctx->user_ip6[0], w1 = ctx->user_ip6[1], w2 = ctx->user_ip6[2];
	struct weft_orig *orig;

	/* Only dual-stack sockets carrying an IPv4 connection can belong to a captured one. */
	if (!weft_is_mapped6(w0, w1, w2))
		return SOCK_ALLOW;
	orig = lookup(ctx->sk);
	if (orig) {
		ctx->user_ip6[3] = orig->ip4;
		ctx->user_port = orig->port;
		weft_count(WEFT_R_SOCKNAME);
	}
	return SOCK_ALLOW;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
