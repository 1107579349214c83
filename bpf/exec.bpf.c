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
	unsigned fname_off = ctx->__data_loc_filename & 0xFFFF;
	int pid = bpf_get_current_pid_tgid() >> 32;
	struct event *e;

	if (target_pid && pid != target_pid)
		return 0;
	e = bpf_ringbuf_reserve(&rb, sizeof(*e), 0);
	if (!e)
		return 0;
	e->pid = pid;
	bpf_get_current_comm(&e->comm, sizeof(e->comm));
	bpf_probe_read_str(&e->filename, sizeof(e->filename), (void *)ctx + fname_off);
	bpf_ringbuf_submit(e, 0);
	return 0;
}
