// SPDX-License-Identifier: GPL-2.0
/* Loader test: SEC() names from libbpf 1.5's table that pybpf lacked:
 * kprobe.session (loads here; attaching needs CONFIG_KPROBES), and the
 * sleepable uprobe.multi.s / uretprobe.multi.s, attached for real. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

const volatile int target_tgid = 0;
__u64 session_calls = 0;
__u64 sleepable_entries = 0;
__u64 sleepable_returns = 0;

static __always_inline int ours(void)
{
	return (bpf_get_current_pid_tgid() >> 32) == target_tgid;
}

SEC("kprobe.session/do_nanosleep")
int on_session(struct pt_regs *ctx)
{
	__sync_fetch_and_add(&session_calls, 1);
	return 0;
}

SEC("uprobe.multi.s")
int on_entry_sleepable(struct pt_regs *ctx)
{
	if (ours())
		__sync_fetch_and_add(&sleepable_entries, 1);
	return 0;
}

SEC("uretprobe.multi.s")
int on_return_sleepable(struct pt_regs *ctx)
{
	if (ours())
		__sync_fetch_and_add(&sleepable_returns, 1);
	return 0;
}

/* uprobe.session (libbpf 1.6): one program on entry and return; returning
 * non-zero on entry would skip the return run */
extern bool bpf_session_is_return(void) __ksym;

__u64 session_entries = 0;
__u64 session_returns = 0;

SEC("uprobe.session")
int on_uprobe_session(struct pt_regs *ctx)
{
	if (!ours())
		return 1;
	if (bpf_session_is_return())
		__sync_fetch_and_add(&session_returns, 1);
	else
		__sync_fetch_and_add(&session_entries, 1);
	return 0;
}
