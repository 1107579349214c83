// SPDX-License-Identifier: GPL-2.0
/* Programs whose hook needs a target that SEC() does not give: `pybpf load`
 * and BPFObject.attach() must skip them (and say why), never guess one
 * (the root cgroup, this network namespace, an interface).  One tracepoint
 * program that does attach. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

__u64 tgt_hits = 0;

/* globals of every kind `--set` parses by BTF type */
enum tgt_color { TGT_RED = 1, TGT_GREEN = 2, TGT_BLUE = -3 };
const volatile bool opt_flag = false;
const volatile enum tgt_color opt_color = TGT_RED;
const volatile char opt_name[8] = "none";
const volatile __u8 opt_small = 0;
const volatile __s16 opt_signed = 0;
const volatile __u64 opt_big = 0;
const volatile struct { int a; } opt_struct = {};
int data_int = 5;
char bss_label[4];

SEC("cgroup/sock_create")
int tgt_cgroup_sock(struct bpf_sock *sk)
{
	return 1;
}

SEC("cgroup_skb/egress")
int tgt_cgroup_skb(struct __sk_buff *skb)
{
	return 1;
}

SEC("sk_lookup")
int tgt_sk_lookup(struct bpf_sk_lookup *ctx)
{
	return SK_PASS;
}

SEC("xdp")
int tgt_xdp(struct xdp_md *ctx)
{
	return XDP_PASS;
}

SEC("uprobe")
int tgt_uprobe(void *ctx)
{
	return 0;
}

SEC("tp/syscalls/sys_enter_getppid")
int tgt_tp(void *ctx)
{
	if (opt_flag || opt_color == TGT_BLUE || opt_name[0] == 'x' || opt_small || opt_signed ||
	    opt_big || opt_struct.a || data_int == 7 || bss_label[0])
		__sync_fetch_and_add(&tgt_hits, 1);
	return 0;
}
