// SPDX-License-Identifier: GPL-2.0
/* Exec snoop with bpf_ringbuf_reserve()/bpf_ringbuf_submit(): no extra copy. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include "exec.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024);
} rb SEC(".maps");

/* Puts struct event into the object's BTF (the reserve API never names it), so
 * user space can decode records through BTF: pybpf matches records to the
 * object's structs by size. */
const struct event *unused_event __attribute__((unused));

/* 0: every process; otherwise only this tgid (set with --set target_pid=N). */
const volatile int target_pid = 0;

SEC("tp/sched/sched_process_exec")
int handle_exec(struct trace_event_raw_sched_process_exec *ctx)
{
	struct event *e;

	if (target_pid && (int)(bpf_get_current_pid_tgid() >> 32) != target_pid)
		return 0;
	e = bpf_ringbuf_reserve(&rb, sizeof(*e), 0);
	if (!e)
		return 0;
	fill_event(e, ctx);
	bpf_ringbuf_submit(e, 0);
	return 0;
}
