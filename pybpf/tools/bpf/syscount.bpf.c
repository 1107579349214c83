// SPDX-License-Identifier: GPL-2.0
/* syscount: system calls counted per syscall number or per process, with
 * their total and largest latency (-L), from raw_syscalls sys_enter/sys_exit. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include "tools.h"

char LICENSE[] SEC("license") = "GPL";

struct data {
	__u64 count;
	__u64 total_ns;
	__u64 max_ns;
	char comm[TASK_COMM_LEN];
};

/* -P: count per process (tgid) instead of per syscall number. */
const volatile bool targ_per_process = false;
/* -L: measure latency. */
const volatile bool targ_latency = false;
/* -x: only failed calls; -e ERRNO: only calls failing with this errno. */
const volatile bool targ_failed = false;
const volatile int targ_errno = 0;

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
	__type(value, struct data);
} counts SEC(".maps");

static const struct data zero_data = {};

SEC("tp/raw_syscalls/sys_enter")
int sys_enter(struct trace_event_raw_sys_enter *ctx)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	__u64 ts;

	if (!targ_latency || !current_wanted())
		return 0;
	ts = bpf_ktime_get_ns();
	bpf_map_update_elem(&start, &tid, &ts, BPF_ANY);
	return 0;
}

SEC("tp/raw_syscalls/sys_exit")
int sys_exit(struct trace_event_raw_sys_exit *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tid = (__u32)id, key;
	long ret = ctx->ret;
	__u64 delta = 0, *ts;
	struct data *d;

	if (ctx->id < 0)
		return 0;
	if (targ_latency) {
		ts = bpf_map_lookup_elem(&start, &tid);
		if (!ts)
			return 0;
		delta = bpf_ktime_get_ns() - *ts;
		bpf_map_delete_elem(&start, &tid);
	} else if (!current_wanted()) {
		return 0;
	}
	if (targ_failed && ret >= 0)
		return 0;
	if (targ_errno && ret != -targ_errno)
		return 0;
	key = targ_per_process ? (__u32)(id >> 32) : (__u32)ctx->id;
	d = bpf_map_lookup_elem(&counts, &key);
	if (!d) {
		bpf_map_update_elem(&counts, &key, &zero_data, BPF_NOEXIST);
		d = bpf_map_lookup_elem(&counts, &key);
		if (!d)
			return 0;
		if (targ_per_process)
			bpf_get_current_comm(d->comm, sizeof(d->comm));
	}
	__sync_fetch_and_add(&d->count, 1);
	if (targ_latency) {
		__sync_fetch_and_add(&d->total_ns, delta);
		if (delta > d->max_ns)
			d->max_ns = delta;
	}
	return 0;
}
