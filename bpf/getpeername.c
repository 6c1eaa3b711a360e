// SPDX-License-Identifier: Apache-2.0
/*
 * cgroup/getpeername4 and getpeername6, attached to the parent cgroup of the node's pods: a
 * captured socket is connected to the proxy, but the app asked for (and must see) the address it
 * dialled, so the peer is reported from the original destination stored on the socket.
 */
#include "weft_common.h"

SEC("cgroup/getpeername4")
int weft_getpeer4(struct bpf_sock_addr *ctx)
{
	struct weft_orig *orig = bpf_sk_storage_get(&weft_sk_orig, ctx->sk, NULL, 0);

	if (orig) {
		ctx->user_ip4 = orig->ip4;
		ctx->user_port = orig->port;
		weft_count(WEFT_R_PEERNAME);
	}
	return SOCK_ALLOW;
}

SEC("cgroup/getpeername6")
int weft_getpeer6(struct bpf_sock_addr *ctx)
{
	struct weft_orig *orig = bpf_sk_storage_get(&weft_sk_orig, ctx->sk, NULL, 0);

	if (orig) {
		ctx->user_ip6[0] = 0;
		ctx->user_ip6[1] = 0;
		ctx->user_ip6[2] = bpf_htonl(0x0000ffff);
		ctx->user_ip6[3] = orig->ip4;
		ctx->user_port = orig->port;
		weft_count(WEFT_R_PEERNAME);
	}
	return SOCK_ALLOW;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
