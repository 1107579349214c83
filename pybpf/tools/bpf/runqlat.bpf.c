// SPDX-License-Identifier: GPL-2.0
/* runqlat: how long runnable tasks wait on a run queue, as a log2 histogram:
 * from wakeup (sched_wakeup, sched_wakeup_new) or preemption (sched_switch
 * with the previous task still TASK_RUNNING) to the sched_switch that runs
 * it. BTF-typed tracepoints (tp_btf): the task pointers are the arguments. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
#include "tools.h"

char LICENSE[] SEC("license") = "GPL";

#define TASK_RUNNING_ 0

/* -P: one histogram per process (tgid); -L: per thread. */
const volatile bool targ_per_process = false;
const volatile bool targ_per_thread = false;

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 10240);
	__type(key, __u32);
	__type(value, __u64);
} start SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 10240);
	__type(key, __u32);
	__type(value, struct hist);
} hists SEC(".maps");

/* Kernels before 5.14 call the field "state". */
struct task_struct___pre514 {
	long state;
} __attribute__((preserve_access_index));

static __always_inline long task_state(struct task_struct *t)
{
	if (bpf_core_field_exists(t->__state))
		return BPF_CORE_READ(t, __state);
	return BPF_CORE_READ((struct task_struct___pre514 *)t, state);
}

static __always_inline void enqueued(struct task_struct *p)
{
	__u32 pid = BPF_CORE_READ(p, pid);
	__u64 ts;
	char comm[TASK_COMM_LEN];

	if (!pid)
		return;
	BPF_CORE_READ_STR_INTO(&comm, p, comm);
	if (!task_wanted(BPF_CORE_READ(p, tgid), comm))
		return;
	ts = bpf_ktime_get_ns();
	bpf_map_update_elem(&start, &pid, &ts, BPF_ANY);
}

SEC("tp_btf/sched_wakeup")
int BPF_PROG(sched_wakeup, struct task_struct *p)
{
	enqueued(p);
	return 0;
}

SEC("tp_btf/sched_wakeup_new")
int BPF_PROG(sched_wakeup_new, struct task_struct *p)
{
	enqueued(p);
	return 0;
}

SEC("tp_btf/sched_switch")
int BPF_PROG(sched_switch, bool preempt, struct task_struct *prev, struct task_struct *next)
{
	__u32 pid, key;
	__u64 *ts, delta;
	struct hist *h;

	if (task_state(prev) == TASK_RUNNING_)
		enqueued(prev);
	pid = BPF_CORE_READ(next, pid);
	ts = bpf_map_lookup_elem(&start, &pid);
	if (!ts)
		return 0;
	delta = (bpf_ktime_get_ns() - *ts) / targ_unit_ns;
	bpf_map_delete_elem(&start, &pid);
	key = targ_per_thread ? pid : targ_per_process ? BPF_CORE_READ(next, tgid) : 0;
	h = hist_get(&hists, &key);
	if (!h)
		return 0;
	if (key && !h->comm[0])
		BPF_CORE_READ_STR_INTO(&h->comm, next, comm);
	hist_add(h, delta);
	return 0;
}
