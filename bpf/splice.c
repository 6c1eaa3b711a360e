// SPDX-License-Identifier: Apache-2.0
/*
 * sk_skb verdict on the proxy's own sockets: the same-node fast path.
 *
 * When both pods of a connection are on this node and only L4 policy applies, the proxy still
 * accepts the client's connection and dials the server (policy, identity and the pod's own source
 * address are decided exactly as before), then puts both sockets in weft_splice_socks and pairs
 * them in weft_splice_peer. From then on every segment that arrives on one socket is handed by the
 * kernel to the other socket's send path: no wake-up of the proxy, no copy to userspace.
 *
 * The map and this program belong to one proxy process and are not pinned: they die with it, and
 * with them every pairing (a closed socket leaves a sockhash by itself).
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

#define WEFT_SPLICE_MAX 65536

/* The proxy's spliced sockets by socket cookie. */
struct {
	__uint(type, BPF_MAP_TYPE_SOCKHASH);
	__uint(max_entries, WEFT_SPLICE_MAX);
	__type(key, __u64);
	__type(value, __u64);
} weft_splice_socks SEC(".maps");

/* Cookie of a spliced socket → cookie of the socket its bytes go to. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, WEFT_SPLICE_MAX);
	__type(key, __u64);
	__type(value, __u64);
} weft_splice_peer SEC(".maps");

SEC("sk_skb")
int weft_splice(struct __sk_buff *skb)
{
	__u64 cookie = bpf_get_socket_cookie(skb);
	__u64 *peer = bpf_map_lookup_elem(&weft_splice_peer, &cookie);
	struct bpf_sock *target;

	/*
	 * A bare FIN (no payload) stays: the proxy sees the end of this side and shuts the other one
	 * down once the bytes before it are through. The kernel would report sending an empty segment
	 * as EPIPE on the target.
	 */
	if (!peer || skb->len == 0)
		return SK_PASS;
	/*
	 * The peer may not be in the sockhash yet (userspace inserts the two sockets one after the
	 * other) or may be gone already: then the bytes stay on this socket for the proxy to read and
	 * forward itself. Redirecting to a missing key would drop them.
	 */
	target = bpf_map_lookup_elem(&weft_splice_socks, peer);
	if (!target)
		return SK_PASS;
	bpf_sk_release(target);
	return bpf_sk_redirect_hash(skb, &weft_splice_socks, peer, 0);
}

char LICENSE[] SEC("license") = "GPL";
