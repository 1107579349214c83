// SPDX-License-Identifier: GPL-2.0
/* Attach tests: tracepoint, raw_tp and tp_btf programs counting the
 * getppid() calls of one process (target_pid and target_nr, the syscall
 * number, set before load). */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

char LICENSE[] SEC("license") = "GPL";

const volatile int target_pid = 0;
const volatile long target_nr = -1;	/* syscall number of getppid() */
__u64 tp_hits = 0;
__u64 raw_tp_hits = 0;
__u64 tp_btf_hits = 0;

static __always_inline int is_target(void)
{
	return (bpf_get_current_pid_tgid() >> 32) == target_pid;
}

SEC("tp/syscalls/sys_enter_getppid")
int count_tp(void *ctx)
{
	if (is_target())
		__sync_fetch_and_add(&tp_hits, 1);
	return 0;
}

SEC("raw_tp/sys_enter")
int BPF_PROG(count_raw_tp, struct pt_regs *regs, long id)
{
	if (is_target() && id == target_nr)
		__sync_fetch_and_add(&raw_tp_hits, 1);
	return 0;
}

SEC("tp_btf/sys_enter")
int BPF_PROG(count_tp_btf, struct pt_regs *regs, long id)
{
	if (is_target() && id == target_nr)
		__sync_fetch_and_add(&tp_btf_hits, 1);
	return 0;
}
