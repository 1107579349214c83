// SPDX-License-Identifier: GPL-2.0
/* Exec snoop with bpf_perf_event_output() into per-CPU perf buffers. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include "exec.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* max_entries left 0: the loader sizes it to the number of possible CPUs. */
struct {
	__uint(type, BPF_MAP_TYPE_PERF_EVENT_ARRAY);
	__uint(key_size, sizeof(int));
	__uint(value_size, sizeof(int));
} pb SEC(".maps");

EXEC_SCRATCH_MAP(heap);

SEC("tp/sched/sched_process_exec")
int handle_exec(struct trace_event_raw_sched_process_exec *ctx)
{
	struct event *e;
	int zero = 0;

	e = bpf_map_lookup_elem(&heap, &zero);
	if (!e) /* can't happen */
		return 0;
	fill_event(e, ctx);
	bpf_perf_event_output(ctx, &pb, BPF_F_CURRENT_CPU, e, sizeof(*e));
	return 0;
}
