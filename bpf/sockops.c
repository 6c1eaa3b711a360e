// SPDX-License-Identifier: Apache-2.0
/*
 * sockops, attached to the parent cgroup of the node's pods.
 *
 * When a captured socket's SYN is about to leave (TCP_CONNECT_CB, the first moment its local port
 * is known) the original destination stored by connect is copied into weft_tuples under the
 * connection's 4-tuple, which is what the proxy's accepted socket can be matched by. The socket
 * then asks for state callbacks, so the entry is removed when it closes.
 *
 * Byte orders (the trap of this hook): local_port is host order, remote_port is network order
 * (in the upper half of the u32 on kernels that shift it, the lower half on others).
 */
#include "weft_common.h"

#define TCP_CLOSE_STATE 7

/* The connection's key as the client sees it, from the sockops context. */
static __always_inline struct weft_tuple4 tuple_of(struct bpf_sock_ops *skops)
{
	__u32 rport = skops->remote_port;
	struct weft_tuple4 t = {
		.saddr = skops->local_ip4,
		.daddr = skops->remote_ip4,
		.sport = bpf_htons((__u16)skops->local_port),
		.dport = (__u16)(rport > 0xffff ? rport >> 16 : rport),
	};

	return t;
}

/* Records a captured connection's tuple; 0, or -errno when it cannot. */
static __always_inline int record(struct bpf_sock_ops *skops)
{
	struct bpf_sock *sk = skops->sk;
	struct weft_tuple4 t;
	struct weft_orig *orig;
	struct weft_pod *pod;

	if (!sk)
		return -ENOENT;
	orig = bpf_sk_storage_get(&weft_sk_orig, sk, NULL, 0);
	if (!orig)
		return -ENOENT; /* not a captured socket */
	t = tuple_of(skops);
	/*
	 * Bind the tuple to the cgroup connect saw: only a connection leaving from the address the
	 * agent enrolled for that pod is recorded. Without a record the proxy finds no original
	 * destination and refuses, so a pod that gave itself another pod's address (an extra address
	 * or a source route) cannot borrow that pod's identity.
	 */
	pod = bpf_map_lookup_elem(&weft_pods, &orig->cgroup_id);
	if (!pod || pod->ip4 != t.saddr)
		return -EACCES;
	if (bpf_map_update_elem(&weft_tuples, &t, orig, BPF_ANY))
		return -ENOMEM;
	bpf_sock_ops_cb_flags_set(skops, skops->bpf_sock_ops_cb_flags | BPF_SOCK_OPS_STATE_CB_FLAG);
	return 0;
}

SEC("sockops")
int weft_sockops(struct bpf_sock_ops *skops)
{
	struct weft_tuple4 t;
	int r;

	switch (skops->op) {
	case BPF_SOCK_OPS_TCP_CONNECT_CB:
		r = record(skops);
		if (r == 0)
			weft_count(WEFT_R_TUPLE_RECORDED);
		else if (r == -EACCES)
			weft_count(WEFT_R_SOURCE_MISMATCH);
		else if (r != -ENOENT)
			weft_count(WEFT_R_TUPLE_FAILED);
		break;
	case BPF_SOCK_OPS_STATE_CB:
		/* args[1] is the new state; only captured sockets asked for this callback. */
		if (skops->args[1] == TCP_CLOSE_STATE) {
			t = tuple_of(skops);
			if (bpf_map_delete_elem(&weft_tuples, &t) == 0)
				weft_count(WEFT_R_TUPLE_CLOSED);
		}
		break;
	}
	return 1;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
