// SPDX-License-Identifier: GPL-2.0
/* CO-RE relocations on direct loads (tp_btf gives a trusted task pointer):
 * a bitfield read with BPF_CORE_READ_BITFIELD (byte offset, byte size and
 * shifts relocated separately), and a load whose width changes because the
 * local field is wider than the kernel's (unsigned, so that is allowed).
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>

char LICENSE[] SEC("license") = "GPL";

struct task_struct___direct {
	unsigned long long flags;	/* unsigned int in the kernel */
	unsigned int in_execve: 1;
	int pid;
} __attribute__((preserve_access_index));

const volatile int target_tgid = 0;

int hits;
int got_pid;
__u64 got_in_execve, got_flags, kernel_flags;

SEC("tp_btf/sched_process_exec")
int BPF_PROG(core_direct, struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)
{
	struct task_struct___direct *t = (void *)p;

	if (p->real_parent->tgid != target_tgid)
		return 0;
	hits++;
	got_pid = t->pid;
	got_flags = t->flags;
	kernel_flags = p->flags;
	got_in_execve = BPF_CORE_READ_BITFIELD(t, in_execve);
	return 0;
}
