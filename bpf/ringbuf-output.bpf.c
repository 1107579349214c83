// SPDX-License-Identifier: GPL-2.0
/* Exec snoop with bpf_ringbuf_output(): the event is built in a per-CPU scratch slot. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include "exec.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024);
} rb SEC(".maps");

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
	bpf_ringbuf_output(&rb, e, sizeof(*e), 0);
	return 0;
}
