// SPDX-License-Identifier: GPL-2.0
/* CO-RE field relocations against struct task_struct, through local flavors.
 *
 * On every syscall entry of the process whose tgid is target_tgid, read
 * fields of the current task through local "___flavor" declarations that
 * list only what we use (in another order, with other types where that is
 * allowed), and record the results in globals for the test to compare with
 * what user space knows (getpid, gettid, getppid, /proc/self/comm,
 * getrlimit) and with offsets computed from the kernel BTF.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>

char LICENSE[] SEC("license") = "GPL";

/* Deliberately out of kernel order; flavors match struct task_struct by name. */
struct rlimit___local {
	unsigned long rlim_max;
	unsigned long rlim_cur;
} __attribute__((preserve_access_index));

struct signal_struct___local {
	struct rlimit___local rlim[16];
} __attribute__((preserve_access_index));

struct task_struct___local {
	char comm[16];
	int tgid;
	int pid;
	struct task_struct___local *real_parent;
	struct signal_struct___local *signal;
	unsigned int in_execve: 1;	/* a kernel bitfield */
	int no_such_field;		/* missing in every kernel: only read when guarded */
} __attribute__((preserve_access_index));

/* Same name, incompatible type: pid is an int in the kernel, not a pointer. */
struct task_struct___bad {
	void *pid;
} __attribute__((preserve_access_index));

const volatile int target_tgid = 0;

int hits;
int got_pid, got_tgid, got_ppid;
char got_comm[16];
char got_comm2;				/* comm[2]: an array element accessor */
__u64 got_nofile_cur, got_nofile_max;
__u64 got_in_execve;
int got_missing = -1;			/* stays -1: the guarded read is dead code */
int exists_pid, exists_missing, exists_bad;
__u32 off_pid, off_tgid, off_comm, off_comm2, off_real_parent, off_rlim_cur;
__u32 size_pid, size_comm, size_real_parent, size_in_execve;
__u32 signed_pid, signed_in_execve;
__u64 lshift_in_execve, rshift_in_execve;

SEC("raw_tp/sys_enter")
int core_task(void *ctx)
{
	struct task_struct___local *t = (void *)bpf_get_current_task();
	struct task_struct___bad *bad = (void *)t;
	struct signal_struct___local *sig;

	if (BPF_CORE_READ(t, tgid) != target_tgid)
		return 0;
	hits++;
	got_pid = BPF_CORE_READ(t, pid);
	got_tgid = BPF_CORE_READ(t, tgid);
	got_ppid = BPF_CORE_READ(t, real_parent, tgid);
	BPF_CORE_READ_STR_INTO(&got_comm, t, comm);
	got_comm2 = BPF_CORE_READ(t, comm[2]);
	sig = BPF_CORE_READ(t, signal);
	got_nofile_cur = BPF_CORE_READ(sig, rlim[7].rlim_cur);	/* RLIMIT_NOFILE */
	got_nofile_max = BPF_CORE_READ(sig, rlim[7].rlim_max);
	got_in_execve = BPF_CORE_READ_BITFIELD_PROBED(t, in_execve);
	if (bpf_core_field_exists(t->no_such_field))
		got_missing = BPF_CORE_READ(t, no_such_field);

	exists_pid = bpf_core_field_exists(t->pid);
	exists_missing = bpf_core_field_exists(t->no_such_field);
	exists_bad = bpf_core_field_exists(bad->pid);
	off_pid = bpf_core_field_offset(t->pid);
	off_tgid = bpf_core_field_offset(t->tgid);
	off_comm = bpf_core_field_offset(t->comm);
	off_comm2 = bpf_core_field_offset(t->comm[2]);
	off_real_parent = bpf_core_field_offset(t->real_parent);
	off_rlim_cur = bpf_core_field_offset(sig->rlim[7].rlim_cur);
	size_pid = bpf_core_field_size(t->pid);
	size_comm = bpf_core_field_size(t->comm);
	size_real_parent = bpf_core_field_size(t->real_parent);
	size_in_execve = bpf_core_field_size(t->in_execve);
	signed_pid = __builtin_preserve_field_info(t->pid, BPF_FIELD_SIGNED);
	signed_in_execve = __builtin_preserve_field_info(t->in_execve, BPF_FIELD_SIGNED);
	lshift_in_execve = __builtin_preserve_field_info(t->in_execve, BPF_FIELD_LSHIFT_U64);
	rshift_in_execve = __builtin_preserve_field_info(t->in_execve, BPF_FIELD_RSHIFT_U64);
	return 0;
}

/* During exec, the kernel sets current->in_execve: a bitfield read that must give 1. */
int exec_hits;
int exec_pid;
__u64 exec_in_execve;
char exec_comm[16];

SEC("raw_tp/sched_process_exec")
int core_exec(void *ctx)
{
	struct task_struct___local *t = (void *)bpf_get_current_task();

	if (BPF_CORE_READ(t, real_parent, tgid) != target_tgid)
		return 0;
	exec_hits++;
	exec_pid = BPF_CORE_READ(t, pid);
	exec_in_execve = BPF_CORE_READ_BITFIELD_PROBED(t, in_execve);
	BPF_CORE_READ_STR_INTO(&exec_comm, t, comm);
	return 0;
}
