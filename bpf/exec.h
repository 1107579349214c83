/* The event shared by the three exec-snoop programs (after the seed article).
 * Include after vmlinux.h and bpf_helpers.h. */
#ifndef PYBPF_EXEC_H
#define PYBPF_EXEC_H

#define TASK_COMM_LEN 16
#define MAX_FILENAME_LEN 512

/* Bigger than the 512-byte BPF stack, on purpose. */
struct event {
	int pid;
	char comm[TASK_COMM_LEN];
	char filename[MAX_FILENAME_LEN];
};

/* A per-CPU scratch slot for building an event off the stack (for the
 * bpf_ringbuf_output() and bpf_perf_event_output() variants, which copy it). */
#define EXEC_SCRATCH_MAP(name)					\
	struct {						\
		__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);	\
		__uint(max_entries, 1);				\
		__type(key, int);				\
		__type(value, struct event);			\
	} name SEC(".maps")

/* Fill an event for the current task from the sched_process_exec context. */
static __always_inline void
fill_event(struct event *e, struct trace_event_raw_sched_process_exec *ctx)
{
	unsigned fname_off = ctx->__data_loc_filename & 0xFFFF;

	e->pid = bpf_get_current_pid_tgid() >> 32;
	bpf_get_current_comm(&e->comm, sizeof(e->comm));
	bpf_probe_read_str(&e->filename, sizeof(e->filename), (void *)ctx + fname_off);
}

#endif
