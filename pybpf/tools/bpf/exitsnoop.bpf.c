// SPDX-License-Identifier: GPL-2.0
/* exitsnoop: process (or, with -T/--threads, thread) exits with exit code,
 * terminating signal and lifetime, from sched_process_exit and the task's
 * fields read with CO-RE. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include "tools.h"

char LICENSE[] SEC("license") = "GPL";

struct event {
	__u64 ts;
	__u64 start_time;	/* CLOCK_MONOTONIC ns of the task's start */
	__u64 lifetime_ns;
	__u32 pid;
	__u32 tid;
	__u32 ppid;
	__s32 exit_code;	/* the status as wait() sees it */
	__u32 sig;		/* terminating signal, 0 for a normal exit */
	__u32 code;		/* exit status for a normal exit */
	__u8 core;		/* core dumped */
	char comm[TASK_COMM_LEN];
};
const struct event *unused_event __attribute__((unused));

/* 1: every thread's exit, not only the thread group leader's. */
const volatile bool targ_threads = false;
/* 1: only exits with a non-zero status or by a signal (-x). */
const volatile bool targ_failed = false;

EVENTS_RINGBUF(1 << 18);

SEC("tp/sched/sched_process_exit")
int process_exit(void *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 pid = id >> 32, tid = (__u32)id;
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct event *e;
	int code;

	if (!targ_threads && pid != tid)
		return 0;
	if (!current_wanted())
		return 0;
	code = BPF_CORE_READ(task, exit_code);
	if (targ_failed && code == 0)
		return 0;
	e = EVENT_RESERVE(sizeof(*e));
	if (!e)
		return 0;
	e->ts = bpf_ktime_get_ns();
	e->start_time = BPF_CORE_READ(task, start_time);
	e->lifetime_ns = e->ts - e->start_time;
	e->pid = pid;
	e->tid = tid;
	e->ppid = BPF_CORE_READ(task, real_parent, tgid);
	e->exit_code = code;
	e->sig = code & 0x7f;
	e->core = (code & 0x80) != 0;
	e->code = (code >> 8) & 0xff;
	bpf_get_current_comm(e->comm, sizeof(e->comm));
	bpf_ringbuf_submit(e, 0);
	return 0;
}
