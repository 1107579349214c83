// SPDX-License-Identifier: GPL-2.0
/* execsnoop: every execve/execveat with its arguments, return value and parent.
 * The arguments are read at syscall entry (kept per thread), the event is sent
 * at exit with the return value; sched_process_exec moves the pending entry
 * when a non-leader thread's exec made it the leader (its tid changed).
 * -p filters the caller; -c the new command name. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include "tools.h"

char LICENSE[] SEC("license") = "GPL";

#define ARG_LEN 128
#define MAX_ARGS 20
#define ARGS_BUF (ARG_LEN * MAX_ARGS)

struct event {
	__u64 ts;
	__u32 pid;
	__u32 tid;
	__u32 ppid;
	__u32 uid;
	__s32 retval;
	__u32 args_count;
	__u32 args_size;
	__u8 truncated;
	char comm[TASK_COMM_LEN];
	char args[ARGS_BUF];	/* NUL-separated: filename, then argv[1..] */
};
const struct event *unused_event __attribute__((unused));

/* 1: report failed execs too (-x). */
const volatile bool targ_failed = false;

EVENTS_RINGBUF(1 << 20);

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 10240);
	__type(key, __u32);
	__type(value, struct event);
} pending SEC(".maps");

static const struct event empty_event = {};

static __always_inline int enter(const char *filename, const char *const *argv)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tid = (__u32)id;
	struct event *e;
	const char *arg;
	long len;

	/* -c applies to the new command name, at exit */
	if (targ_tgid && (__u32)(id >> 32) != targ_tgid)
		return 0;
	if (bpf_map_update_elem(&pending, &tid, &empty_event, BPF_NOEXIST))
		return 0;
	e = bpf_map_lookup_elem(&pending, &tid);
	if (!e)
		return 0;
	e->ts = bpf_ktime_get_ns();
	e->pid = id >> 32;
	e->tid = tid;
	e->ppid = current_ppid();
	e->uid = (__u32)bpf_get_current_uid_gid();
	len = bpf_probe_read_user_str(e->args, ARG_LEN, filename);
	if (len <= 0)
		return 0;
	e->args_size = len;
	e->args_count = 1;
	for (int i = 1; i < MAX_ARGS; i++) {
		__u32 off = e->args_size;

		if (bpf_probe_read_user(&arg, sizeof(arg), &argv[i]) || !arg)
			return 0;
		if (off > ARGS_BUF - ARG_LEN) {
			e->truncated = 1;
			return 0;
		}
		len = bpf_probe_read_user_str(&e->args[off], ARG_LEN, arg);
		if (len <= 0)
			return 0;
		e->args_size = off + len;
		e->args_count++;
	}
	/* MAX_ARGS read: more follow? */
	if (!bpf_probe_read_user(&arg, sizeof(arg), &argv[MAX_ARGS]) && arg)
		e->truncated = 1;
	return 0;
}

static __always_inline int leave(long ret)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	struct event *e = bpf_map_lookup_elem(&pending, &tid);
	__u32 size;

	if (!e)
		return 0;
	e->retval = ret;
	bpf_get_current_comm(e->comm, sizeof(e->comm));
	if ((ret == 0 || targ_failed) && comm_wanted(e->comm)) {
		size = e->args_size;
		if (size > ARGS_BUF)
			size = ARGS_BUF;
		size += offsetof(struct event, args);
		if (bpf_ringbuf_output(&events, e, size, 0))
			__sync_fetch_and_add(&events_dropped, 1);
	}
	bpf_map_delete_elem(&pending, &tid);
	return 0;
}

SEC("tp/syscalls/sys_enter_execve")
int execve_enter(struct trace_event_raw_sys_enter *ctx)
{
	return enter((const char *)ctx->args[0], (const char *const *)ctx->args[1]);
}

SEC("tp/syscalls/sys_enter_execveat")
int execveat_enter(struct trace_event_raw_sys_enter *ctx)
{
	return enter((const char *)ctx->args[1], (const char *const *)ctx->args[2]);
}

SEC("tp/syscalls/sys_exit_execve")
int execve_exit(struct trace_event_raw_sys_exit *ctx)
{
	return leave(ctx->ret);
}

SEC("tp/syscalls/sys_exit_execveat")
int execveat_exit(struct trace_event_raw_sys_exit *ctx)
{
	return leave(ctx->ret);
}

SEC("tp/sched/sched_process_exec")
int process_exec(struct trace_event_raw_sched_process_exec *ctx)
{
	__u32 old = ctx->old_pid, now = ctx->pid;
	struct event *e;

	if (old == now)
		return 0;
	e = bpf_map_lookup_elem(&pending, &old);
	if (!e)
		return 0;
	e->tid = now;
	bpf_map_update_elem(&pending, &now, e, BPF_ANY);
	bpf_map_delete_elem(&pending, &old);
	return 0;
}
