// SPDX-License-Identifier: GPL-2.0
/* Loader test: SEC("?...") programs are not loaded unless enabled (libbpf's
 * autoload); one of them would not even pass the verifier. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

const volatile int target_tgid = 0;
__u64 always_calls = 0;
__u64 optional_calls = 0;

static __always_inline int ours(void)
{
	return (bpf_get_current_pid_tgid() >> 32) == target_tgid;
}

SEC("tp/syscalls/sys_enter_getppid")
int always_on(void *ctx)
{
	if (ours())
		__sync_fetch_and_add(&always_calls, 1);
	return 0;
}

SEC("?tp/syscalls/sys_enter_getppid")
int optional_on(void *ctx)
{
	if (ours())
		__sync_fetch_and_add(&optional_calls, 1);
	return 0;
}

/* Reads through a NULL pointer: the verifier refuses it, so the object loads
 * only because this program is skipped. */
SEC("?raw_tp/sys_enter")
int never_valid(void *ctx)
{
	return *(volatile int *)0;
}
