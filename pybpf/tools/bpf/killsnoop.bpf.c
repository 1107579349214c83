// SPDX-License-Identifier: GPL-2.0
/* killsnoop: signals sent with kill(), tkill() and tgkill(): sender, target,
 * signal and result (the arguments kept per thread at entry, sent at exit). */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include "tools.h"

char LICENSE[] SEC("license") = "GPL";

enum kill_call { CALL_KILL = 0, CALL_TKILL = 1, CALL_TGKILL = 2 };

struct args {
	__s32 tpid;	/* kill: pid (or group); tkill/tgkill: thread id */
	__s32 tgid;	/* tgkill only */
	__s32 sig;
	__u32 call;
};

struct event {
	__u64 ts;
	__u32 pid;
	__u32 tid;
	__s32 tpid;
	__s32 tgid;
	__s32 sig;
	__s32 ret;
	enum kill_call call;
	char comm[TASK_COMM_LEN];
};
const struct event *unused_event __attribute__((unused));

/* 1: only failed sends (-x); -s SIG: only this signal. */
const volatile bool targ_failed = false;
const volatile int targ_sig = 0;

EVENTS_RINGBUF(1 << 18);

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 10240);
	__type(key, __u32);
	__type(value, struct args);
} pending SEC(".maps");

static __always_inline int enter(__s32 tpid, __s32 tgid, __s32 sig, __u32 call)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	struct args a = { .tpid = tpid, .tgid = tgid, .sig = sig, .call = call };

	if (targ_sig && sig != targ_sig)
		return 0;
	if (!current_wanted())
		return 0;
	bpf_map_update_elem(&pending, &tid, &a, BPF_ANY);
	return 0;
}

static __always_inline int leave(long ret)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tid = (__u32)id;
	struct args *a = bpf_map_lookup_elem(&pending, &tid);
	struct event *e;

	if (!a)
		return 0;
	if (targ_failed && ret >= 0)
		goto out;
	e = EVENT_RESERVE(sizeof(*e));
	if (!e)
		goto out;
	e->ts = bpf_ktime_get_ns();
	e->pid = id >> 32;
	e->tid = tid;
	e->tpid = a->tpid;
	e->tgid = a->tgid;
	e->sig = a->sig;
	e->call = a->call;
	e->ret = ret;
	bpf_get_current_comm(e->comm, sizeof(e->comm));
	bpf_ringbuf_submit(e, 0);
out:
	bpf_map_delete_elem(&pending, &tid);
	return 0;
}

SEC("tp/syscalls/sys_enter_kill")
int kill_enter(struct trace_event_raw_sys_enter *ctx)
{
	return enter(ctx->args[0], 0, ctx->args[1], CALL_KILL);
}

SEC("tp/syscalls/sys_exit_kill")
int kill_exit(struct trace_event_raw_sys_exit *ctx)
{
	return leave(ctx->ret);
}

SEC("tp/syscalls/sys_enter_tkill")
int tkill_enter(struct trace_event_raw_sys_enter *ctx)
{
	return enter(ctx->args[0], 0, ctx->args[1], CALL_TKILL);
}

SEC("tp/syscalls/sys_exit_tkill")
int tkill_exit(struct trace_event_raw_sys_exit *ctx)
{
	return leave(ctx->ret);
}

SEC("tp/syscalls/sys_enter_tgkill")
int tgkill_enter(struct trace_event_raw_sys_enter *ctx)
{
	return enter(ctx->args[1], ctx->args[0], ctx->args[2], CALL_TGKILL);
}

SEC("tp/syscalls/sys_exit_tgkill")
int tgkill_exit(struct trace_event_raw_sys_exit *ctx)
{
	return leave(ctx->ret);
}
