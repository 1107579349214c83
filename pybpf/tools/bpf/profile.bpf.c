// SPDX-License-Identifier: GPL-2.0
/* profile: CPU stack sampling. A software perf event (cpu-clock) at a
 * frequency on every CPU runs this program; it counts each (process, kernel
 * stack, user stack) seen. Stacks are walked by the kernel (bpf_get_stackid):
 * no architecture-specific code here. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include "tools.h"

char LICENSE[] SEC("license") = "GPL";

#define MAX_DEPTH 127

struct stack_key {
	__u32 pid;
	__s32 kstack;	/* stack map ids; negative: none (-EFAULT, -EEXIST...) */
	__s32 ustack;
	char comm[TASK_COMM_LEN];
};

/* -U user stacks only, -K kernel only, -I include the idle task. */
const volatile bool targ_user_only = false;
const volatile bool targ_kernel_only = false;
const volatile bool targ_idle = false;

struct {
	__uint(type, BPF_MAP_TYPE_STACK_TRACE);
	__uint(max_entries, 16384);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, MAX_DEPTH * sizeof(__u64));
} stacks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, struct stack_key);
	__type(value, __u64);
} counts SEC(".maps");

SEC("perf_event")
int sample(struct bpf_perf_event_data *ctx)
{
	__u64 id = bpf_get_current_pid_tgid(), one = 1, *n;
	struct stack_key k = {};

	if (!targ_idle && (__u32)id == 0)
		return 0;
	if (!current_wanted())
		return 0;
	k.pid = id >> 32;
	k.kstack = targ_user_only ? -1 : bpf_get_stackid(ctx, &stacks, 0);
	k.ustack = targ_kernel_only ? -1 : bpf_get_stackid(ctx, &stacks, BPF_F_USER_STACK);
	bpf_get_current_comm(k.comm, sizeof(k.comm));
	n = bpf_map_lookup_elem(&counts, &k);
	if (n)
		__sync_fetch_and_add(n, 1);
	else
		bpf_map_update_elem(&counts, &k, &one, BPF_NOEXIST);
	return 0;
}
