// SPDX-License-Identifier: GPL-2.0
/* Seed claim "ringbuf keeps events in order, perfbuf does not"
 * (tools/seed_claims.py ordering, docs/seed-claims.md).
 *
 * fork, exec and exit of the processes descending from the pids user space
 * puts in `tracked` each become one event, stamped with a global sequence
 * number (one atomic fetch-and-add) and written to BOTH transports: the
 * shared ring `rb` and the per-CPU perf buffers `pb`.  The same event, the
 * same seq, two delivery orders to compare. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include "transport_maps.h"

char LICENSE[] SEC("license") = "GPL";

enum order_type { ORDER_FORK = 1, ORDER_EXEC = 2, ORDER_EXIT = 3 };

struct order_event {
	__u64 seq;
	__u64 ts;
	__u32 pid;
	__u32 cpu;
	__u32 type;
	__u32 ppid;     /* fork: the parent; else 0 */
};

RINGBUF_MAP(rb, 1 << 20);
PERF_ARRAY_MAP(pb);

/* pids whose children are traced: user space seeds it, fork extends it */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, __u32);
	__type(value, __u8);
} tracked SEC(".maps");

__u64 next_seq;
__u64 rb_dropped;       /* bpf_ringbuf_output() failed */
__u64 pb_dropped;       /* bpf_perf_event_output() failed */

static __always_inline void emit(void *ctx, __u32 type, __u32 pid, __u32 ppid)
{
	struct order_event e = {
		.seq = __sync_fetch_and_add(&next_seq, 1),
		.ts = bpf_ktime_get_ns(),
		.pid = pid,
		.cpu = bpf_get_smp_processor_id(),
		.type = type,
		.ppid = ppid,
	};

	if (bpf_ringbuf_output(&rb, &e, sizeof(e), 0))
		__sync_fetch_and_add(&rb_dropped, 1);
	if (bpf_perf_event_output(ctx, &pb, BPF_F_CURRENT_CPU, &e, sizeof(e)))
		__sync_fetch_and_add(&pb_dropped, 1);
}

/* Runs in the parent before the child is first woken up: the fork event is
 * written before the child can run, let alone exec. */
SEC("tp/sched/sched_process_fork")
int order_fork(struct trace_event_raw_sched_process_fork *ctx)
{
	__u32 parent = ctx->parent_pid, child = ctx->child_pid;
	__u8 one = 1;

	if (!bpf_map_lookup_elem(&tracked, &parent))
		return 0;
	bpf_map_update_elem(&tracked, &child, &one, BPF_ANY);
	emit(ctx, ORDER_FORK, child, parent);
	return 0;
}

SEC("tp/sched/sched_process_exec")
int order_exec(void *ctx)
{
	__u32 pid = (__u32)bpf_get_current_pid_tgid();

	if (bpf_map_lookup_elem(&tracked, &pid))
		emit(ctx, ORDER_EXEC, pid, 0);
	return 0;
}

SEC("tp/sched/sched_process_exit")
int order_exit(void *ctx)
{
	__u32 pid = (__u32)bpf_get_current_pid_tgid();

	if (bpf_map_lookup_elem(&tracked, &pid)) {
		emit(ctx, ORDER_EXIT, pid, 0);
		bpf_map_delete_elem(&tracked, &pid);
	}
	return 0;
}
