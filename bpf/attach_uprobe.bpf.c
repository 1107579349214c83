// SPDX-License-Identifier: GPL-2.0
/* Attach tests: uprobes on a test binary's
 *   int pybpf_target_a(int x) { return x + 1; }
 *   int pybpf_target_b(int x) { return x * 2; }
 * summing arguments and return values, so a probe at a wrong offset shows. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

char LICENSE[] SEC("license") = "GPL";

__u64 a_calls = 0;
__s64 a_arg_sum = 0;
__s64 b_ret_sum = 0;
__u64 multi_calls = 0;

SEC("uprobe")
int BPF_KPROBE(enter_a, int x)
{
	__sync_fetch_and_add(&a_calls, 1);
	__sync_fetch_and_add(&a_arg_sum, x);
	return 0;
}

SEC("uretprobe")
int BPF_KRETPROBE(exit_b, int ret)
{
	__sync_fetch_and_add(&b_ret_sum, ret);
	return 0;
}

SEC("uprobe.multi")
int enter_any(struct pt_regs *ctx)
{
	__sync_fetch_and_add(&multi_calls, 1);
	return 0;
}
