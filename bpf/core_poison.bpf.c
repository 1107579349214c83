// SPDX-License-Identifier: GPL-2.0
/* A CO-RE read of a field no kernel has, NOT guarded by bpf_core_field_exists():
 * the relocation poisons the load and the verifier reaches it, so loading
 * must fail with a message naming the relocation, the type and the field.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

char LICENSE[] SEC("license") = "GPL";

struct task_struct___poison {
	int pybpf_no_such_field;
} __attribute__((preserve_access_index));

int got;

SEC("raw_tp/sys_enter")
int core_poison(void *ctx)
{
	struct task_struct___poison *t = (void *)bpf_get_current_task();

	got = BPF_CORE_READ(t, pybpf_no_such_field);
	return 0;
}

/* Local pid is 8 bytes, the kernel's is a signed 4-byte int: a direct load
 * can't be narrowed without changing the value, so it is poisoned too. */
struct task_struct___wide_signed {
	long long pid;
} __attribute__((preserve_access_index));

SEC("tp_btf/sched_process_exec")
int core_poison_resize(__u64 *ctx)
{
	struct task_struct___wide_signed *t = (void *)ctx[0];

	got = t->pid;
	return 0;
}
