// SPDX-License-Identifier: GPL-2.0
/* Attach tests: programs hooked through BTF (BPF trampolines and LSM; this
 * kernel may refuse to load them) and an freplace pair: xdp_main calls the
 * global function decide(), which replace_decide replaces. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

char LICENSE[] SEC("license") = "GPL";

__u64 hits = 0;

SEC("fentry/do_nanosleep")
int BPF_PROG(on_nanosleep_entry)
{
	__sync_fetch_and_add(&hits, 1);
	return 0;
}

SEC("fexit/do_nanosleep")
int BPF_PROG(on_nanosleep_exit)
{
	__sync_fetch_and_add(&hits, 1);
	return 0;
}

SEC("lsm/file_open")
int BPF_PROG(on_file_open, struct file *file)
{
	__sync_fetch_and_add(&hits, 1);
	return 0;
}

__noinline int decide(struct xdp_md *ctx)
{
	return ctx ? XDP_PASS : XDP_ABORTED;
}

SEC("xdp")
int xdp_main(struct xdp_md *ctx)
{
	return decide(ctx);
}

SEC("freplace/decide")
int replace_decide(struct xdp_md *ctx)
{
	return XDP_DROP;
}
