/* SPDX-License-Identifier: Apache-2.0 */
/* What every weft program includes: kernel types, helpers, the ABI, the maps and the config. */
#ifndef WEFT_COMMON_H
#define WEFT_COMMON_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "weft_abi.h"
#include "weft_maps.h"

/* errno values inner functions return negated (vmlinux.h has no errno.h). */
#define ENOENT 2
#define ENOMEM 12
#define EACCES 13
#define EINVAL 22

#ifndef AF_INET
#define AF_INET 2
#endif
#ifndef AF_INET6
#define AF_INET6 10
#endif
#ifndef SOCK_STREAM
#define SOCK_STREAM 1
#endif
#ifndef ETH_P_IP
#define ETH_P_IP 0x0800
#endif
#ifndef IPPROTO_TCP_NUM
#define IPPROTO_TCP_NUM 6
#endif

/* Return values of cgroup sock_addr / sock programs. */
#define SOCK_ALLOW 1
#define SOCK_DENY 0

/* Set by userspace before load (struct weft_config in weft_abi.h); the only .rodata variable. */
const volatile struct weft_config weft_cfg = {};

/* Counts one decision; counters are per CPU, so this needs no atomics. */
static __always_inline void weft_count(__u32 reason)
{
	__u64 *n = bpf_map_lookup_elem(&weft_stats, &reason);

	if (n)
		*n += 1;
}

/* 127.0.0.0/8 or 0.0.0.0 (network order in, so compare on the first octet). */
static __always_inline int weft_is_local4(__u32 ip4)
{
	return ip4 == 0 || (bpf_ntohl(ip4) >> 24) == 127;
}

/*
 * ::ffff:a.b.c.d, the IPv4-mapped form dual-stack sockets use for IPv4 peers. Takes the three
 * leading words by value: the verifier rejects context reads through a derived pointer.
 */
static __always_inline int weft_is_mapped6(__u32 w0, __u32 w1, __u32 w2)
{
	return w0 == 0 && w1 == 0 && w2 == bpf_htonl(0x0000ffff);
}

#endif /* WEFT_COMMON_H */
