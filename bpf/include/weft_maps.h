/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The maps every weft object shares. Each object declares all of them; userspace pins each map
 * under its name in the agent's pin directory the first time and hands the pinned map to every
 * later object (bpf_map__reuse_fd), so all programs see one set of maps, and a restarted agent
 * keeps the same maps (and their entries) across program swaps.
 */
#ifndef WEFT_MAPS_H
#define WEFT_MAPS_H

#include "weft_abi.h"

/* Enrolled pods by cgroup id. Written only by agent/redirect. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, WEFT_MAX_PODS);
	__type(key, __u64);
	__type(value, struct weft_pod);
} weft_pods SEC(".maps");

/* Guard mode by pod IPv4 (network order). Written only by agent/redirect. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, WEFT_MAX_PODS);
	__type(key, __u32);
	__type(value, struct weft_guard);
} weft_guard SEC(".maps");

/* Destinations never captured. Written only by agent/redirect. */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, WEFT_MAX_EXCLUDES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct weft_exclude_key);
	__type(value, struct weft_exclude_value);
} weft_exclude SEC(".maps");

/*
 * The original destination, stored on the client's socket itself: freed with the socket, so it
 * can never leak or be read for a recycled port. connect writes it, getpeername and sockops read it.
 */
struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct weft_orig);
} weft_sk_orig SEC(".maps");

/*
 * The original destination by 4-tuple, for the proxy side (which only has the accepted socket).
 * sockops adds the entry when the client's SYN leaves and removes it when the socket closes; LRU
 * bounds it if a close is ever missed.
 */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, WEFT_MAX_TUPLES);
	__type(key, struct weft_tuple4);
	__type(value, struct weft_orig);
} weft_tuples SEC(".maps");

/* Decision counters by enum weft_reason. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, WEFT_R_MAX);
	__type(key, __u32);
	__type(value, __u64);
} weft_stats SEC(".maps");

/* Who created the pinned state (ABI version); written by userspace only. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct weft_meta);
} weft_meta SEC(".maps");

#endif /* WEFT_MAPS_H */
