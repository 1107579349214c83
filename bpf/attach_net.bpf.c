// SPDX-License-Identifier: GPL-2.0
/* Attach tests: XDP, tcx and cgroup programs counting what they see. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

__u64 xdp_packets = 0;
__u64 tcx_packets = 0;
__u64 sockets_created = 0;

SEC("xdp")
int count_xdp(struct xdp_md *ctx)
{
	__sync_fetch_and_add(&xdp_packets, 1);
	return XDP_PASS;
}

SEC("tc/ingress")
int count_tcx(struct __sk_buff *skb)
{
	__sync_fetch_and_add(&tcx_packets, 1);
	return TCX_NEXT;
}

SEC("cgroup/sock_create")
int count_sock(struct bpf_sock *sk)
{
	__sync_fetch_and_add(&sockets_created, 1);
	return 1;
}
