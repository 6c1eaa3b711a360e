// SPDX-License-Identifier: Apache-2.0
/*
 * cgroup/sock_create, attached to the proxy's cgroup: every socket the proxy creates carries the
 * proxy mark, which is how the STRICT guard tells the proxy's connections to a pod from a
 * plaintext client's, and how connect knows never to capture the proxy itself.
 */
#include "weft_common.h"

SEC("cgroup/sock_create")
int weft_sock_mark(struct bpf_sock *sk)
{
	if (weft_cfg.proxy_mark) {
		sk->mark = weft_cfg.proxy_mark;
		weft_count(WEFT_R_SOCK_MARKED);
	}
	return SOCK_ALLOW;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
