// SPDX-License-Identifier: GPL-2.0
/* Attach tests: each program stores the bpf cookie of the link it runs under
 * (bpf_get_attach_cookie) and counts its runs, for the calls of one process
 * (target_pid, set before load). */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

char LICENSE[] SEC("license") = "GPL";

const volatile int target_pid = 0;
__u64 tp_cookie = 0, tp_runs = 0;
__u64 btf_cookie = 0, btf_runs = 0;
__u64 up_cookie = 0, up_runs = 0;
__u64 multi_cookie_sum = 0, multi_runs = 0;
__u64 pe_cookie = 0, pe_runs = 0;

static __always_inline int is_target(void)
{
	return (bpf_get_current_pid_tgid() >> 32) == target_pid;
}

SEC("tp/syscalls/sys_enter_getppid")
int cookie_tp(void *ctx)
{
	if (is_target()) {
		tp_cookie = bpf_get_attach_cookie(ctx);
		__sync_fetch_and_add(&tp_runs, 1);
	}
	return 0;
}

SEC("tp_btf/sys_enter")
int BPF_PROG(cookie_tp_btf, struct pt_regs *regs, long id)
{
	if (is_target()) {
		btf_cookie = bpf_get_attach_cookie(ctx);
		__sync_fetch_and_add(&btf_runs, 1);
	}
	return 0;
}

SEC("uprobe")
int cookie_uprobe(void *ctx)
{
	if (is_target()) {
		up_cookie = bpf_get_attach_cookie(ctx);
		__sync_fetch_and_add(&up_runs, 1);
	}
	return 0;
}

SEC("uprobe.multi")
int cookie_uprobe_multi(void *ctx)
{
	if (is_target()) {
		__sync_fetch_and_add(&multi_cookie_sum, bpf_get_attach_cookie(ctx));
		__sync_fetch_and_add(&multi_runs, 1);
	}
	return 0;
}

SEC("perf_event")
int cookie_perf_event(void *ctx)
{
	if (is_target()) {
		pe_cookie = bpf_get_attach_cookie(ctx);
		__sync_fetch_and_add(&pe_runs, 1);
	}
	return 0;
}
