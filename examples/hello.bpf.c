// SPDX-License-Identifier: GPL-2.0
/* The README's tour: one event per exec into a ring buffer, and a count of
 * execs per user id in a hash map. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

struct event {
	__u32 pid;
	__u32 uid;
	char comm[16];
	char filename[128];
};

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024);
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32);		/* uid */
	__type(value, __u64);		/* execs */
} execs_by_uid SEC(".maps");

/* Puts struct event into the object's BTF, so pybpf can decode the records
 * (bpf_ringbuf_reserve() alone never names the type). */
const struct event *unused_event __attribute__((unused));

SEC("tp/sched/sched_process_exec")
int on_exec(struct trace_event_raw_sched_process_exec *ctx)
{
	__u32 uid = bpf_get_current_uid_gid();
	unsigned int name_off = ctx->__data_loc_filename & 0xFFFF;
	__u64 one = 1, *count;
	struct event *e;

	count = bpf_map_lookup_elem(&execs_by_uid, &uid);
	if (count)
		__sync_fetch_and_add(count, 1);
	else
		bpf_map_update_elem(&execs_by_uid, &uid, &one, BPF_NOEXIST);

	e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e)
		return 0;
	e->pid = bpf_get_current_pid_tgid() >> 32;
	e->uid = uid;
	bpf_get_current_comm(e->comm, sizeof(e->comm));
	bpf_probe_read_kernel_str(e->filename, sizeof(e->filename), (void *)ctx + name_off);
	bpf_ringbuf_submit(e, 0);
	return 0;
}
