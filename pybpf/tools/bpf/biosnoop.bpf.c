// SPDX-License-Identifier: GPL-2.0
/* biosnoop: one event per completed block request: device, operation, sector,
 * size, the task that queued it, time queued (insert -> issue) and device
 * latency (issue -> complete). BTF tracepoints on the request. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
#include "tools.h"

char LICENSE[] SEC("license") = "GPL";

struct pending {
	__u64 insert_ts;
	__u64 issue_ts;
	__u64 sector;
	__u32 len;
	__u32 pid;
	char comm[TASK_COMM_LEN];
};

struct event {
	__u64 ts;
	__u64 sector;
	__u64 queued_ns;	/* insert -> issue, 0 when not queued by the OS */
	__u64 latency_ns;	/* issue -> complete */
	__u32 dev;
	__u32 cmd_flags;
	__u32 len;
	__u32 pid;
	__s32 error;
	char comm[TASK_COMM_LEN];
};
const struct event *unused_event __attribute__((unused));

EVENTS_RINGBUF(1 << 20);

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 10240);
	__type(key, __u64);
	__type(value, struct pending);
} start SEC(".maps");

static __always_inline void record(struct request *rq, bool issue)
{
	__u64 key = (__u64)rq, now = bpf_ktime_get_ns();
	struct pending *p, fresh = {};

	if (targ_dev && request_dev(rq) != targ_dev)
		return;
	p = bpf_map_lookup_elem(&start, &key);
	if (!p) {
		fresh.pid = bpf_get_current_pid_tgid() >> 32;
		bpf_get_current_comm(fresh.comm, sizeof(fresh.comm));
		bpf_map_update_elem(&start, &key, &fresh, BPF_ANY);
		p = bpf_map_lookup_elem(&start, &key);
		if (!p)
			return;
	}
	if (issue) {
		p->issue_ts = now;
		p->sector = BPF_CORE_READ(rq, __sector);
		p->len = BPF_CORE_READ(rq, __data_len);
	} else {
		p->insert_ts = now;
	}
}

SEC("tp_btf/block_rq_insert")
int BPF_PROG(block_rq_insert, struct request *rq)
{
	record(rq, false);
	return 0;
}

SEC("tp_btf/block_rq_issue")
int BPF_PROG(block_rq_issue, struct request *rq)
{
	record(rq, true);
	return 0;
}

SEC("tp_btf/block_rq_complete")
int BPF_PROG(block_rq_complete, struct request *rq, int error, unsigned int nr_bytes)
{
	__u64 key = (__u64)rq, now = bpf_ktime_get_ns();
	struct pending *p = bpf_map_lookup_elem(&start, &key);
	struct event *e;

	if (!p)
		return 0;
	if (!p->issue_ts)
		goto out;
	if (!task_wanted(p->pid, p->comm))
		goto out;
	e = EVENT_RESERVE(sizeof(*e));
	if (!e)
		goto out;
	e->ts = now;
	e->sector = p->sector;
	e->queued_ns = p->insert_ts ? p->issue_ts - p->insert_ts : 0;
	e->latency_ns = now - p->issue_ts;
	e->dev = request_dev(rq);
	e->cmd_flags = BPF_CORE_READ(rq, cmd_flags);
	e->len = p->len;
	e->pid = p->pid;
	e->error = error;
	__builtin_memcpy(e->comm, p->comm, sizeof(e->comm));
	bpf_ringbuf_submit(e, 0);
out:
	bpf_map_delete_elem(&start, &key);
	return 0;
}
