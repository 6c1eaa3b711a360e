// SPDX-License-Identifier: Apache-2.0
/*
 * TCX egress on a pod's host-side veth (traffic toward the pod), the inbound guard.
 *
 * A TCP SYN toward a pod in weft_guard is let through when it carries the proxy mark (the node
 * proxy, in this netns, delivering mesh traffic). Otherwise STRICT drops it and PERMISSIVE lets it
 * pass. Only SYNs are judged: established connections are never cut by a mode change. The mark
 * test works because the proxy runs in the node netns; skb->mark does not survive a netns crossing,
 * so a SYN from another node or pod never carries it.
 *
 * Kubelet probes: the node's own plaintext toward a guarded pod is SNATed to WEFT_PROBE_IP4 by the
 * agent's nftables rule; a SYN from that address is let through only when it was made on this node
 * (skb ingress_ifindex 0), never when it arrived from a pod or another node claiming that address.
 *
 * TCX_NEXT (not TCX_PASS) hands other packets to any program attached after ours.
 */
#include "weft_common.h"

#define TCP_FLAG_SYN 0x02
#define TCP_FLAG_ACK 0x10

/* The pod IPv4 (network order) a bare SYN is addressed to, 0 for anything else; *saddr its source. */
static __always_inline __u32 syn_target(struct __sk_buff *skb, __u32 *saddr)
{
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip;
	__u8 *tcp;
	__u32 ihl;

	if ((void *)(eth + 1) > end || eth->h_proto != bpf_htons(ETH_P_IP))
		return 0;
	ip = (void *)(eth + 1);
	if ((void *)(ip + 1) > end || ip->protocol != IPPROTO_TCP_NUM)
		return 0;
	if (ip->frag_off & bpf_htons(0x1fff))
		return 0; /* not the first fragment: no TCP header here */
	ihl = ip->ihl * 4;
	if (ihl < sizeof(*ip))
		return 0;
	tcp = (__u8 *)ip + ihl;
	if ((void *)(tcp + 14) > end)
		return 0;
	/* Byte 13 of the TCP header holds the flags. */
	if ((tcp[13] & (TCP_FLAG_SYN | TCP_FLAG_ACK)) != TCP_FLAG_SYN)
		return 0;
	*saddr = ip->saddr;
	return ip->daddr;
}

SEC("tc")
int weft_tcx_guard(struct __sk_buff *skb)
{
	struct weft_guard *g;
	__u32 dst, src = 0;

	if (skb->protocol != bpf_htons(ETH_P_IP))
		return TCX_NEXT;
	dst = syn_target(skb, &src);
	if (!dst)
		return TCX_NEXT;
	g = bpf_map_lookup_elem(&weft_guard, &dst);
	if (!g || g->mode == WEFT_INBOUND_OFF)
		return TCX_NEXT;
	if (weft_cfg.proxy_mark && skb->mark == weft_cfg.proxy_mark) {
		weft_count(WEFT_R_GUARD_MARKED);
		return TCX_NEXT;
	}
	if (src == bpf_htonl(WEFT_PROBE_IP4_HOST) && skb->ingress_ifindex == 0) {
		weft_count(WEFT_R_GUARD_PROBE);
		return TCX_NEXT;
	}
	if (g->mode == WEFT_INBOUND_STRICT) {
		weft_count(WEFT_R_GUARD_DROP);
		return TCX_DROP;
	}
	weft_count(WEFT_R_GUARD_PERMISSIVE);
	return TCX_NEXT;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
