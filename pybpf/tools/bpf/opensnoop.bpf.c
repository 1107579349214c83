// SPDX-License-Identifier: GPL-2.0
/* opensnoop: open(), openat(), openat2() with path, flags, mode and result.
 * The arguments are kept per thread at entry; the path is read at exit, once
 * the kernel has faulted the user page in. sys_enter_open exists on some
 * architectures only: user space leaves that pair unloaded elsewhere. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include "tools.h"

char LICENSE[] SEC("license") = "GPL";

#define NAME_LEN 256

struct args {
	const char *fname;
	__u64 flags;
	__u32 mode;
	__s32 dfd;
};

struct event {
	__u64 ts;
	__u32 pid;
	__u32 tid;
	__u32 uid;
	__s32 ret;
	__s32 dfd;
	__u32 mode;
	__u64 flags;
	char comm[TASK_COMM_LEN];
	char fname[NAME_LEN];
};
const struct event *unused_event __attribute__((unused));

/* 1: only failed opens (-x). */
const volatile bool targ_failed = false;

EVENTS_RINGBUF(1 << 20);

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 10240);
	__type(key, __u32);
	__type(value, struct args);
} pending SEC(".maps");

#define AT_FDCWD_ -100

static __always_inline int enter(const char *fname, __u64 flags, __u32 mode, __s32 dfd)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	struct args a = { .fname = fname, .flags = flags, .mode = mode, .dfd = dfd };

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
	e->uid = (__u32)bpf_get_current_uid_gid();
	e->ret = ret;
	e->dfd = a->dfd;
	e->mode = a->mode;
	e->flags = a->flags;
	bpf_get_current_comm(e->comm, sizeof(e->comm));
	if (bpf_probe_read_user_str(e->fname, sizeof(e->fname), a->fname) < 0)
		e->fname[0] = 0;
	bpf_ringbuf_submit(e, 0);
out:
	bpf_map_delete_elem(&pending, &tid);
	return 0;
}

SEC("tp/syscalls/sys_enter_open")
int open_enter(struct trace_event_raw_sys_enter *ctx)
{
	return enter((const char *)ctx->args[0], ctx->args[1], ctx->args[2], AT_FDCWD_);
}

SEC("tp/syscalls/sys_exit_open")
int open_exit(struct trace_event_raw_sys_exit *ctx)
{
	return leave(ctx->ret);
}

SEC("tp/syscalls/sys_enter_openat")
int openat_enter(struct trace_event_raw_sys_enter *ctx)
{
	return enter((const char *)ctx->args[1], ctx->args[2], ctx->args[3], ctx->args[0]);
}

SEC("tp/syscalls/sys_exit_openat")
int openat_exit(struct trace_event_raw_sys_exit *ctx)
{
	return leave(ctx->ret);
}

SEC("tp/syscalls/sys_enter_openat2")
int openat2_enter(struct trace_event_raw_sys_enter *ctx)
{
	struct open_how how = {};

	bpf_probe_read_user(&how, sizeof(how), (void *)ctx->args[2]);
	return enter((const char *)ctx->args[1], how.flags, how.mode, ctx->args[0]);
}

SEC("tp/syscalls/sys_exit_openat2")
int openat2_exit(struct trace_event_raw_sys_exit *ctx)
{
	return leave(ctx->ret);
}
